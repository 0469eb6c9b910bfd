"""Models built by name from the registry (:mod:`zoomin.models.registry`).

``build_model(model_type, num_classes, **params)`` with ``model_type`` a key of
:data:`MODEL_TYPES`. Every model is called as ``model(images, generator=None, sampling="sample")``
on a list of :class:`zoomin.image_access.ImageAccess` and returns a
:class:`zoomin.models.output.ModelOutput`. Importing this package does not import torch (the
workflow plans the DAG with it); the model modules do.
"""

from zoomin.models.registry import MODEL_TYPES, ModelType, build_model, model_type

__all__ = ["MODEL_TYPES", "ModelType", "build_model", "model_type"]
