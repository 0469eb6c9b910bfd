"""Handing memory that freed tensors leave in the C heap back to the system between images.

glibc's malloc serves a large request with its own ``mmap`` (unmapped when freed) only above a
threshold that it raises, by default, to the size of every such block freed; after the first few
freed tensors of a few MB, later ones come from the heap, and what they leave there when freed
stays with the process. Within one Zoom-In inference on a slide that costs 80-180 MB of RSS above
what its tensors need at once (benchmarks/README.md), and it adds up when one process predicts
many slides. :func:`trim_freed_memory` (glibc's ``malloc_trim``) returns it; ``zoomin predict``
calls it after each input. Fixing the threshold instead (``mallopt``) would bound the peak within
an inference too, but every new tensor then costs fresh pages: 45-75 % more CPU time per
inference, measured by ``benchmarks/gigapixel.py --allocators fixed-threshold``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys


def trim_freed_memory() -> bool:
    """``malloc_trim(0)``: free heap pages go back to the system; ``False`` where there is no glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.malloc_trim(0))
    except (OSError, AttributeError):  # musl and other C libraries have no malloc_trim
        return False
