"""zoomin: the Zoom-In network (two-stage attention sampling) for very large images with tiny objects.

Where things live, in the order a run uses them:

* ``zoomin.config``        -- the workflow config, read, checked and typed (``Experiment``, ``RunSpec``)
* ``zoomin.data``          -- data sources (download, construct), synthetic stand-ins, view and slide caches
* ``zoomin.image_access``  -- the interface through which models read an image
* ``zoomin.sampling``      -- drawing positions (multinomial, Gumbel-top-k, top-k): where the draws happen
* ``zoomin.estimators``    -- unbiased estimators of attention-weighted sums (values and gradients)
* ``zoomin.models``        -- the model registry and every model type (Zoom-In: ``models.zoomin_net``)
* ``zoomin.training``      -- one training run, its losses, pre-training, evaluation and checkpoints
* ``zoomin.measure``       -- FLOPs, peak memory and time per image
* ``zoomin.report``        -- tables and figures from the runs' metrics
* ``zoomin.predict``       -- ``zoomin predict``: a trained model on new images and slides
* ``zoomin.cli``           -- the ``zoomin`` command line and the workflow scripts' glue
* ``zoomin.errors`` / ``zoomin.atomic`` -- user-facing errors; files written whole or not at all
"""

__version__ = "0.1.0"
