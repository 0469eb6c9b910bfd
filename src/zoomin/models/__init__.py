"""Models built by name: the Zoom-In network, ATS, and CNN baselines.

``build_model(model_type, num_classes, **params)`` with ``model_type`` in :data:`MODEL_TYPES`.
Every model is called as ``model(images, generator=None, sampling="sample")`` on a list of
:class:`zoomin.image_access.ImageAccess` and returns a :class:`ModelOutput`.
"""

from zoomin.models.ats import ATSNet
from zoomin.models.cnn import ViewClassifier
from zoomin.models.output import ModelOutput, Representation
from zoomin.models.registry import MODEL_TYPES, PARAMS, build_model, resolve_params
from zoomin.models.zoomin_net import ZoomInNet

__all__ = [
    "MODEL_TYPES",
    "PARAMS",
    "ATSNet",
    "ModelOutput",
    "Representation",
    "ViewClassifier",
    "ZoomInNet",
    "build_model",
    "resolve_params",
]
