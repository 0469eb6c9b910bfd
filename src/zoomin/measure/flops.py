"""Floating-point operations of one call, counted by ``torch.utils.flop_counter.FlopCounterMode``.

FlopCounterMode counts matrix multiplications and convolutions (and attention kernels) from their
shapes, with one multiply-add = 2 FLOPs (:data:`FLOPS_PER_MAC`); element-wise ops, pooling and
resizing are not counted. Resizing done outside torch (Pillow views of an ``InMemoryImage``) is not
counted either. The paper's "GFLOPs" are multiply-accumulates (its Eq. 10 counts
``C_in K^2 H W C_out`` per convolution): half of these FLOPs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch.utils.flop_counter import FlopCounterMode

FLOPS_PER_MAC = 2  # FlopCounterMode's convention: a multiply-accumulate is two floating-point operations


def count_flops(fn: Callable[[], Any]) -> int:
    """Run ``fn()`` once and return the FLOPs of the torch ops it ran."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())
