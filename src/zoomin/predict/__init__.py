"""Applying a trained model to new images and whole slides: predictions, heatmaps, annotations.

:func:`predict` is what ``zoomin predict`` and the workflow's ``predict`` rule run (docs/predict.md).
"""

from zoomin.predict.run import predict

__all__ = ["predict"]
