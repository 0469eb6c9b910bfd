"""zoomin: the Zoom-In network (two-stage attention sampling) for very large images with tiny objects.

Where things live:

* ``zoomin.sampling``      -- drawing positions (multinomial, Gumbel-top-k, top-k)
* ``zoomin.estimators``    -- unbiased estimators of attention-weighted sums (values and gradients)
* ``zoomin.image_access``  -- the interface through which models read an image
* ``zoomin.models``        -- Zoom-In, ATS and CNN baselines, built by name
* ``zoomin.losses``        -- cross-entropy, entropy regulariser, in-sample contrastive loss, mask MSE
* ``zoomin.measure``       -- FLOPs, peak memory and time per image
* ``zoomin.data``          -- synthetic and real datasets, view caches, slide access
* ``zoomin.training`` / ``zoomin.evaluation`` / ``zoomin.tables`` / ``zoomin.plots`` -- the workflow's steps
"""

__version__ = "0.1.0"
