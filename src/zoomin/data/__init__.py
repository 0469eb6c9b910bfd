"""Datasets: the constructed format, folds, the HDF5 view cache, and the synthetic stand-ins.

* :mod:`zoomin.data.constructed` -- write/read/validate ``resources/<dataset>/constructed/``
* :mod:`zoomin.data.folds`       -- stratified k-fold CV and fixed splits -> train/val/test ids
* :mod:`zoomin.data.view_cache`  -- ``views.h5`` (low-resolution views) and its ``ImageAccess``
* :mod:`zoomin.data.synthetic`   -- synthetic stand-ins for the paper's datasets
"""

from zoomin.data.constructed import ConstructedDataset, ImageRecord, read_constructed, write_constructed

__all__ = ["ConstructedDataset", "ImageRecord", "read_constructed", "write_constructed"]
