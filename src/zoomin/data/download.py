"""Fetch raw dataset files over HTTP(S) and unpack archives safely.

:func:`download_file` resumes an interrupted transfer from its ``.part`` file (HTTP ``Range``),
retries transient failures with exponential backoff, verifies an MD5/SHA-256 checksum when one is
known (a file that fails is deleted) and renames the finished file into place, so ``dest`` either
does not exist or is complete. :func:`extract_archive` unpacks zip and tar archives and refuses
any member that would land outside the destination (``..``, absolute paths, links pointing out).
Hosts that need a browser login raise :class:`LoginRequired`, which tells the user where to put
the file they download by hand.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import stat
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import requests
import urllib3
from tqdm import tqdm

from zoomin.errors import InputFileError, UserError

log = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20
DEFAULT_TIMEOUT = 60.0
RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}

# Hosts known to put their files behind a login page: host -> page where the user downloads it.
LOGIN_PAGES = {
    "warwick.ac.uk": "https://warwick.ac.uk/fac/cross_fac/tia/data/crchistolabelednucleihe/",
}


class DownloadError(UserError):
    """A download that failed for good (after the allowed retries, or on a permanent HTTP error)."""


class ChecksumError(InputFileError):
    """A downloaded file whose checksum does not match; the file has been removed."""


class LoginRequired(UserError):
    """A file behind a login: the user must download it in a browser and place it at ``dest``."""

    def __init__(self, url: str, dest: str | Path, page: str | None = None, reason: str = ""):
        self.url = url
        self.dest = Path(dest)
        self.page = page or login_page(url) or url
        why = f" ({reason})" if reason else ""
        super().__init__(
            f"{url} cannot be downloaded automatically{why}: the host asks for a login. "
            f"Log in at {self.page}, download the file in a browser and save it as "
            f"{self.dest.resolve()} , then run the workflow again."
        )


def login_page(url: str) -> str | None:
    """The login/download page for ``url`` if its host is known to need a login, else ``None``."""
    host = (urlsplit(url).hostname or "").lower()
    for known, page in LOGIN_PAGES.items():
        if host == known or host.endswith("." + known):
            return page
    return None


def file_digest(path: str | Path, algorithm: str) -> str:
    """Hex digest of a file, read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_checksum(path: str | Path, md5: str | None = None, sha256: str | None = None) -> None:
    """Raise :class:`ChecksumError` if ``path`` does not match the given checksums (file kept)."""
    for algorithm, expected in (("md5", md5), ("sha256", sha256)):
        if expected:
            actual = file_digest(path, algorithm)
            if actual.lower() != expected.strip().lower():
                raise ChecksumError(path, f"{algorithm} is {actual}, expected {expected}")


def _matches(path: Path, md5: str | None, sha256: str | None) -> bool:
    try:
        verify_checksum(path, md5, sha256)
    except ChecksumError:
        return False
    return True


class _Transient(Exception):
    """A failure worth retrying."""


def download_file(
    url: str,
    dest: str | Path,
    md5: str | None = None,
    sha256: str | None = None,
    retries: int = 3,
    timeout: float = DEFAULT_TIMEOUT,
    backoff: float = 2.0,
    progress: bool = True,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Path:
    """Download ``url`` to ``dest`` and return ``dest``.

    * An existing ``dest`` is kept if it matches the checksum (or no checksum is given); one that
      does not match is removed and downloaded again.
    * Data goes to ``dest + ".part"``; a later call resumes it with a ``Range`` request (a server
      that ignores ranges makes it start over).
    * Connection errors, timeouts, short reads and HTTP 408/429/5xx are retried up to ``retries``
      times (so at most ``retries + 1`` attempts), waiting ``backoff * 2**k`` seconds between them.
      Other HTTP errors fail at once; 401/403 from a host that needs a login raise
      :class:`LoginRequired`.
    * The finished ``.part`` is checked against ``md5``/``sha256``; on a mismatch it is deleted and
      :class:`ChecksumError` is raised. Otherwise it is renamed onto ``dest`` (atomic).
    """
    dest = Path(dest)
    if dest.exists():
        if _matches(dest, md5, sha256):
            log.info("%s already present, not downloading", dest)
            return dest
        log.warning("%s exists but fails its checksum; downloading it again", dest)
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    own_session = session is None
    session = session or requests.Session()
    try:
        attempt = 0
        while True:
            try:
                _fetch_into(session, url, part, dest, timeout, progress)
                break
            except _Transient as error:
                if attempt >= retries:
                    raise DownloadError(
                        f"{url}: giving up after {attempt + 1} attempts: {error}"
                        + (f" (partial data kept in {part}; rerun to resume)" if part.exists() else "")
                    ) from None
                wait = backoff * (2**attempt)
                attempt += 1
                log.warning("%s: %s; retry %d/%d in %.1f s", url, error, attempt, retries, wait)
                sleep(wait)
    finally:
        if own_session:
            session.close()
    try:
        verify_checksum(part, md5, sha256)
    except ChecksumError as error:
        part.unlink(missing_ok=True)
        raise ChecksumError(
            dest, f"download from {url} failed its checksum ({error.problem}); the file was removed"
        ) from None
    os.replace(part, dest)
    log.info("downloaded %s -> %s", url, dest)
    return dest


def _content_range_total(value: str | None) -> int | None:
    """Total size from a ``Content-Range`` header (``bytes a-b/total`` or ``bytes */total``)."""
    if not value or "/" not in value:
        return None
    total = value.rsplit("/", 1)[1].strip()
    return int(total) if total.isdigit() else None


def _fetch_into(
    session: requests.Session, url: str, part: Path, dest: Path, timeout: float, progress: bool
) -> None:
    """One attempt: append the rest of ``url`` to ``part``. Raises :class:`_Transient` to retry."""
    offset = part.stat().st_size if part.exists() else 0
    # Identity encoding: the bytes on disk are the file's bytes, and byte offsets match for Range.
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = session.get(url, headers=headers, stream=True, timeout=timeout)
    except (requests.ConnectionError, requests.Timeout) as error:
        raise _Transient(f"connection failed: {error}") from None
    except requests.RequestException as error:
        raise DownloadError(f"{url}: {error}") from None
    with response:
        status = response.status_code
        if status == 416 and offset:
            total = _content_range_total(response.headers.get("Content-Range"))
            if total == offset:
                return  # the .part already holds the whole file
            part.unlink()
            raise _Transient("server refused to resume; starting over")
        if status in (401, 403) and login_page(url):
            raise LoginRequired(url, dest, reason=f"HTTP {status}")
        if status in RETRYABLE_STATUS:
            raise _Transient(f"HTTP {status}")
        if status >= 400:
            raise DownloadError(f"{url}: HTTP {status} {response.reason}")
        if login_page(url) and "text/html" in response.headers.get("Content-Type", ""):
            raise LoginRequired(url, dest, reason="got a web page instead of the file")
        if status == 206:
            mode = "ab"
            total = _content_range_total(response.headers.get("Content-Range"))
        else:
            if offset:
                log.info("%s: server does not resume; starting over", url)
            offset, mode = 0, "wb"
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        received = offset
        bar = tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
            desc=dest.name, disable=not progress, leave=False,
        )
        try:
            with open(part, mode) as handle:
                while chunk := _read_some(response, received):
                    handle.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        finally:
            bar.close()
        if total is not None and received < total:
            raise _Transient(f"transfer interrupted at {received} of {total} bytes")


def _read_some(response: requests.Response, received: int) -> bytes:
    """The bytes that have arrived (up to CHUNK_SIZE), so a cut connection loses none of them."""
    try:
        return response.raw.read1(CHUNK_SIZE)
    except (urllib3.exceptions.HTTPError, requests.RequestException, ConnectionError, TimeoutError) as error:
        raise _Transient(f"transfer interrupted at {received} bytes: {error}") from None


# --------------------------------------------------------------------------------------------------
# Archives


def _member_target(dest: Path, name: str, archive: Path) -> Path:
    """Where archive member ``name`` lands under ``dest``; refuses anything that escapes it."""
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or (posix.parts and ":" in posix.parts[0]):
        raise InputFileError(archive, f"member {name!r} has an absolute path; refusing to extract")
    if ".." in posix.parts:
        raise InputFileError(archive, f"member {name!r} points outside the destination ('..')")
    target = (dest / Path(*posix.parts)) if posix.parts else dest
    if not _inside(target, dest):
        raise InputFileError(archive, f"member {name!r} points outside the destination")
    return target


def _inside(path: Path, root: Path) -> bool:
    root = Path(os.path.realpath(root))
    path = Path(os.path.realpath(path))
    return path == root or root in path.parents


def _check_zip(archive: Path, zf: zipfile.ZipFile, dest: Path) -> None:
    for info in zf.infolist():
        _member_target(dest, info.filename, archive)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise InputFileError(archive, f"member {info.filename!r} is a symbolic link; refusing to extract")


def _check_tar(archive: Path, tf: tarfile.TarFile, dest: Path) -> None:
    for member in tf.getmembers():
        target = _member_target(dest, member.name, archive)
        if member.issym() or member.islnk():
            link = PurePosixPath(member.linkname.replace("\\", "/"))
            if link.is_absolute():
                raise InputFileError(archive, f"link {member.name!r} -> {member.linkname!r} is absolute")
            base = target.parent if member.issym() else dest
            if not _inside(base / Path(*link.parts), dest):
                raise InputFileError(
                    archive, f"link {member.name!r} -> {member.linkname!r} points outside the destination"
                )
        elif not (member.isfile() or member.isdir()):
            raise InputFileError(archive, f"member {member.name!r} is a device or FIFO; refusing to extract")


def extract_archive(archive: str | Path, dest: str | Path) -> Path:
    """Extract a zip or tar (optionally gz/bz2/xz) archive into ``dest`` and return ``dest``.

    Every member is checked before anything is written: absolute paths, ``..`` components and
    links pointing outside ``dest`` raise :class:`~zoomin.errors.InputFileError`. The archive is
    unpacked into a temporary folder next to ``dest`` and then moved into place, so an interrupted
    extraction leaves no half-filled ``dest`` (entries already in ``dest`` are replaced).
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise InputFileError(archive, "archive not found")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.extract-", dir=dest.parent))
    try:
        if zipfile.is_zipfile(archive):
            try:
                with zipfile.ZipFile(archive) as zf:
                    _check_zip(archive, zf, tmp)
                    members = zf.infolist()
                    for info in tqdm(members, desc=f"extract {archive.name}", unit="file", leave=False):
                        zf.extract(info, tmp)
            except (zipfile.BadZipFile, EOFError, OSError) as error:
                raise InputFileError(archive, f"corrupt zip archive: {error}") from None
        elif tarfile.is_tarfile(archive):
            try:
                with tarfile.open(archive) as tf:
                    _check_tar(archive, tf, tmp)
                    tf.extractall(tmp, filter="data")
            except (tarfile.TarError, EOFError, OSError) as error:
                raise InputFileError(archive, f"corrupt or unsafe tar archive: {error}") from None
        else:
            raise InputFileError(archive, "not a zip or tar archive")
        if not dest.exists():
            os.replace(tmp, dest)
        else:
            for entry in sorted(tmp.iterdir()):
                target = dest / entry.name
                if target.is_dir() and not target.is_symlink() and entry.is_dir():
                    _merge_dir(entry, target)
                else:
                    if target.is_dir() and not target.is_symlink():
                        shutil.rmtree(target)
                    os.replace(entry, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("extracted %s -> %s", archive, dest)
    return dest


def _merge_dir(source: Path, target: Path) -> None:
    for entry in sorted(source.iterdir()):
        destination = target / entry.name
        if entry.is_dir() and destination.is_dir() and not destination.is_symlink():
            _merge_dir(entry, destination)
        else:
            if destination.is_dir() and not destination.is_symlink():
                shutil.rmtree(destination)
            os.replace(entry, destination)
