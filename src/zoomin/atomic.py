"""Write files so that a crash never leaves a partial output: write a temp file, then rename."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from zoomin.errors import OutputFileError, UserError

# errno values that can only come from writing: the disk or quota is full, or the target is read-only
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}
NEARLY_FULL_BYTES = 1 << 20


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` if the block succeeds.

    On any exception the temporary file is removed and ``target`` is left untouched. A write that
    fails because the disk is full (or the quota, or the file system is read-only) is reported as an
    :class:`~zoomin.errors.OutputFileError` naming ``target``, also when the writing library hides
    the cause behind its own message (torch.save, h5py).
    """
    target = Path(target)
    tmp_path: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        yield tmp_path
        os.chmod(tmp_path, usual_mode())  # mkstemp makes the file private; the output should not be
        os.replace(tmp_path, target)
    except BaseException as error:
        if tmp_path is not None:
            tmp_path.unlink(missing_ok=True)
        problem = _write_problem(error, target.parent)
        if problem is not None:
            raise OutputFileError(target, f"could not be written: {problem}") from error
        raise


def usual_mode(directory: bool = False) -> int:
    """The permissions a new file (or folder) gets from this process's umask."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def _write_problem(error: BaseException, folder: Path) -> str | None:
    """Why a write failed, if the file system is the cause; ``None`` for any other error."""
    if isinstance(error, UserError) or not isinstance(error, Exception):
        return None
    if isinstance(error, OSError) and error.errno in WRITE_ERRNOS:
        return f"{error.strerror or os.strerror(error.errno)} (errno {error.errno}) in {folder}"
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return None
    if free < NEARLY_FULL_BYTES:
        return f"the disk is full ({free} bytes free in {folder}; {type(error).__name__}: {error})"
    return None


def write_png(target: str | Path, pixels: Any, compress_level: int | None = None) -> Path:
    """Write ``pixels`` (an HxW or HxWxC uint8 array, or a PIL image) to ``target`` as PNG, atomically.

    ``compress_level`` is zlib's 0-9 (None: Pillow's default). It decides the file's bytes, not its
    pixels; the synthetic stand-ins use 1 (fast), the builders the default.
    """
    from PIL import Image  # here, so that importing this module stays cheap

    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
    options = {} if compress_level is None else {"compress_level": compress_level}
    with atomic_path(target) as tmp:
        image.save(tmp, format="PNG", **options)
    return Path(target)
