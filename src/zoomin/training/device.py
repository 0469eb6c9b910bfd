"""Choosing the compute device once, honestly: CUDA when visible, else the CPU with a warning."""

from __future__ import annotations

import logging

import torch

from zoomin.config.run import DEVICES
from zoomin.errors import ConfigError

log = logging.getLogger(__name__)


def choose_device(requested: str) -> torch.device:
    """``auto``: CUDA if a GPU is visible (``CUDA_VISIBLE_DEVICES`` is respected), else CPU."""
    if requested not in DEVICES:
        raise ConfigError("device", f"must be one of {', '.join(DEVICES)}, got {requested!r}")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", "cuda was requested but no GPU is visible to this job")
    if requested == "cpu":
        device = torch.device("cpu")
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    else:
        log.warning("no GPU visible: running on the CPU")
        device = torch.device("cpu")
    if device.type == "cuda":
        log.info("device: cuda (%s)", torch.cuda.get_device_name(device))
    else:
        log.info("device: cpu (%d threads)", torch.get_num_threads())
    return device
