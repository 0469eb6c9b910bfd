"""Keeping a long inference's host memory (RSS) at what it uses, not at what it once used.

glibc's malloc serves a large request with its own ``mmap`` (returned to the system when freed)
only above a threshold that it raises, by default, to the size of every such block freed. After
the first few freed tensors of a few MB, later ones come from the heap, whose freed memory stays
with the process: one Zoom-In inference on a slide (hundreds of short-lived tensors of 1-10 MB)
then holds 150-250 MB more RSS than its tensors ever need at once (benchmarks/README.md).
:func:`release_freed_tensors` fixes the threshold at glibc's initial 128 KiB, so every tensor of
the inference goes back to the system when freed; it costs page faults (fresh pages for each new
tensor), which the benchmark measures. ``zoomin predict`` calls it; nothing else does.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # mallopt parameter (glibc's malloc.h)
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's initial value


def release_freed_tensors() -> bool:
    """Fix glibc's mmap threshold (module docstring); ``False`` where there is no glibc (no-op)."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        done = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    log.debug("glibc mmap threshold fixed at %d bytes: %s", MMAP_THRESHOLD_BYTES, done)
    return done
