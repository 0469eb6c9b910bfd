"""Downloads against a loopback HTTP server, and safe archive extraction."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.real.fixtures_http import serve
from zoomin.cli.main import main
from zoomin.data import download as dl
from zoomin.data.download import (
    ChecksumError,
    DownloadError,
    LoginRequired,
    download_file,
    extract_archive,
)
from zoomin.errors import InputFileError

PAYLOAD = os.urandom(300_000)
MD5 = hashlib.md5(PAYLOAD).hexdigest()
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


def fetch(url: str, dest: Path, **kwargs) -> Path:
    kwargs.setdefault("backoff", 0.0)
    kwargs.setdefault("timeout", 5.0)
    kwargs.setdefault("progress", False)
    return download_file(url, dest, **kwargs)


def test_success_with_checksums(tmp_path):
    with serve() as server:
        served = server.add("data/file.bin", PAYLOAD)
        dest = fetch(f"{server.url}/data/file.bin", tmp_path / "sub" / "file.bin", md5=MD5, sha256=SHA256)
        assert dest.read_bytes() == PAYLOAD
        assert not dest.with_name("file.bin.part").exists()
        # present and matching: not downloaded again
        fetch(f"{server.url}/data/file.bin", dest, md5=MD5)
        assert len(served.requests) == 1


def test_resume_after_interrupted_transfer(tmp_path):
    dest = tmp_path / "file.bin"
    with serve() as server:
        served = server.add("file.bin", PAYLOAD, cut_after=100_000)
        with pytest.raises(DownloadError, match="resume"):
            fetch(f"{server.url}/file.bin", dest, retries=0)
        part = tmp_path / "file.bin.part"
        assert not dest.exists()
        kept = part.stat().st_size
        assert 0 < kept < len(PAYLOAD)
        fetch(f"{server.url}/file.bin", dest, md5=MD5)
        assert served.requests == [None, f"bytes={kept}-"]
    assert dest.read_bytes() == PAYLOAD
    assert not part.exists()


def test_resume_within_one_call(tmp_path):
    with serve() as server:
        served = server.add("file.bin", PAYLOAD, cut_after=50_000)
        dest = fetch(f"{server.url}/file.bin", tmp_path / "file.bin", md5=MD5, retries=1)
        assert served.requests[0] is None and served.requests[1].startswith("bytes=")
    assert dest.read_bytes() == PAYLOAD


def test_server_without_range_support_starts_over(tmp_path):
    (tmp_path / "file.bin.part").write_bytes(b"stale partial data")
    with serve() as server:
        served = server.add("file.bin", PAYLOAD, honour_range=False)
        dest = fetch(f"{server.url}/file.bin", tmp_path / "file.bin", md5=MD5)
        assert served.requests == ["bytes=18-"]
    assert dest.read_bytes() == PAYLOAD


def test_complete_part_file_is_finished_on_416(tmp_path):
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD)
    with serve() as server:
        server.add("file.bin", PAYLOAD)
        dest = fetch(f"{server.url}/file.bin", tmp_path / "file.bin", md5=MD5)
    assert dest.read_bytes() == PAYLOAD


def test_checksum_mismatch_refused_and_removed(tmp_path):
    dest = tmp_path / "file.bin"
    with serve() as server:
        server.add("file.bin", PAYLOAD)
        with pytest.raises(ChecksumError, match="md5") as info:
            fetch(f"{server.url}/file.bin", dest, md5="0" * 32)
        assert str(dest) in str(info.value)
        with pytest.raises(ChecksumError, match="sha256"):
            fetch(f"{server.url}/file.bin", dest, sha256="f" * 64)
    assert not dest.exists()
    assert not (tmp_path / "file.bin.part").exists()


def test_existing_file_with_wrong_checksum_is_replaced(tmp_path):
    dest = tmp_path / "file.bin"
    dest.write_bytes(b"old corrupt copy")
    with serve() as server:
        server.add("file.bin", PAYLOAD)
        fetch(f"{server.url}/file.bin", dest, md5=MD5)
    assert dest.read_bytes() == PAYLOAD


def test_retries_are_bounded(tmp_path):
    waits = []
    with serve() as server:
        served = server.add("busy.bin", PAYLOAD, fail_times=100)
        with pytest.raises(DownloadError, match="3 attempts"):
            fetch(f"{server.url}/busy.bin", tmp_path / "busy.bin", retries=2, backoff=0.5, sleep=waits.append)
        assert len(served.requests) == 3
    assert waits == [0.5, 1.0]  # exponential backoff
    assert not (tmp_path / "busy.bin").exists()


def test_transient_failures_then_success(tmp_path):
    with serve() as server:
        served = server.add("flaky.bin", PAYLOAD, fail_times=2)
        dest = fetch(f"{server.url}/flaky.bin", tmp_path / "flaky.bin", retries=3, md5=MD5)
        assert len(served.requests) == 3
    assert dest.read_bytes() == PAYLOAD


def test_not_found_fails_without_retrying(tmp_path):
    with serve() as server:
        with pytest.raises(DownloadError, match="404"):
            fetch(f"{server.url}/missing.bin", tmp_path / "missing.bin", retries=5)


def test_connection_refused_is_retried_then_fails(tmp_path):
    with serve() as server:
        url = f"{server.url}/file.bin"
    with pytest.raises(DownloadError, match="2 attempts"):
        fetch(url, tmp_path / "file.bin", retries=1)


def test_login_required_names_the_destination(tmp_path, monkeypatch):
    monkeypatch.setitem(dl.LOGIN_PAGES, "127.0.0.1", "https://example.org/login-page")
    dest = tmp_path / "raw" / "archive.zip"
    with serve() as server:
        server.add("archive.zip", b"", status=403)
        server.add("page.zip", b"<html>sign in</html>", content_type="text/html")
        with pytest.raises(LoginRequired) as info:
            fetch(f"{server.url}/archive.zip", dest)
        assert str(dest.resolve()) in str(info.value)
        assert "https://example.org/login-page" in str(info.value)
        with pytest.raises(LoginRequired, match="web page"):
            fetch(f"{server.url}/page.zip", dest)
    assert not dest.exists()


def test_cli_download(tmp_path, capsys):
    with serve() as server:
        server.add("f.bin", PAYLOAD)
        out = tmp_path / "f.bin"
        assert main(["download", "--url", f"{server.url}/f.bin", "--out", str(out), "--md5", MD5]) == 0
        assert out.read_bytes() == PAYLOAD
        bad = tmp_path / "g.bin"
        assert main(["download", "--url", f"{server.url}/f.bin", "--out", str(bad), "--md5", "1" * 32]) == 1
        assert "checksum" in capsys.readouterr().err
        assert not bad.exists()


# -- archives ---------------------------------------------------------------------------------------


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def make_tar(path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tf.addfile(member)
            else:
                name, data = member
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return path


def symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info


def test_extract_zip_and_tar(tmp_path):
    archive = make_zip(tmp_path / "a.zip", {"top/a.txt": b"a", "top/sub/b.txt": b"b"})
    out = extract_archive(archive, tmp_path / "out")
    assert (out / "top" / "a.txt").read_bytes() == b"a"
    tar = make_tar(tmp_path / "b.tar.gz", [("top/c.txt", b"c"), symlink("top/link", "c.txt")])
    extract_archive(tar, out)  # merges into the existing folder
    assert (out / "top" / "sub" / "b.txt").read_bytes() == b"b"
    assert (out / "top" / "link").read_bytes() == b"c"
    assert not list(tmp_path.glob(".out.extract-*"))


@pytest.mark.parametrize(
    "name",
    ["../evil.txt", "good/../../evil.txt", "/tmp/zoomin-evil.txt", "C:/evil.txt"],
)
def test_zip_path_traversal_refused(tmp_path, name):
    archive = make_zip(tmp_path / "bad.zip", {"ok.txt": b"ok", name: b"evil"})
    dest = tmp_path / "deep" / "out"
    with pytest.raises(InputFileError, match="bad.zip"):
        extract_archive(archive, dest)
    assert not dest.exists()
    assert not (tmp_path / "deep" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()
    assert not Path("/tmp/zoomin-evil.txt").exists()


def test_zip_symlink_refused(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(InputFileError, match="symbolic link"):
        extract_archive(archive, tmp_path / "out")


@pytest.mark.parametrize(
    "members",
    [
        [("../evil.txt", b"x")],
        [("/abs/evil.txt", b"x")],
        [symlink("escape", "../../outside")],
        [symlink("escape", "/etc")],
        [symlink("dir/escape", "../..")],
    ],
)
def test_tar_traversal_refused(tmp_path, members):
    archive = make_tar(tmp_path / "bad.tar.gz", [("fine.txt", b"ok"), *members])
    with pytest.raises(InputFileError, match="bad.tar.gz"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_not_an_archive(tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"this is not an archive")
    with pytest.raises(InputFileError, match="not a zip or tar"):
        extract_archive(junk, tmp_path / "out")


# -- the Snakemake download rules -------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.workflow
@pytest.mark.slow
def test_download_rule_end_to_end(tmp_path):
    import subprocess
    import sys

    from tests.real.fixtures_images import make_crc, zip_folder

    archive = zip_folder(make_crc(tmp_path / "src", [2, 0, 1, 0]), tmp_path / "crc.zip")
    work = tmp_path / "wf"
    work.mkdir()
    with serve() as server:
        server.add("crc.zip", archive.read_bytes())
        dataset = "{{block: Colon, source: colon_cancer, runs: {{seeds: [0]}}, methods: [ats], download: {{url: '{url}', retries: 0}}}}"
        (work / "config.yaml").write_text(
            "seed: 0\nmethods: {ats: {model: ats, label: ATS}}\ndatasets:\n"
            f"  colon: {dataset.format(url=server.url + '/crc.zip')}\n"
            f"  gone: {dataset.format(url=server.url + '/missing.zip')}\n"
        )
        targets = ["resources/colon/raw/.complete", "resources/gone/raw/.complete"]
        done = subprocess.run(
            [sys.executable, "-m", "snakemake", *targets, "-s", str(REPO / "Snakefile"), "--cores", "1",
             "--keep-going", "--configfile", "config.yaml"],
            cwd=work, capture_output=True, text=True, timeout=120,
        )
    assert done.returncode != 0  # the second download fails
    logs = {name: work / "logs" / name / "download.log" for name in ("colon", "gone")}
    assert all(log.is_file() for log in logs.values()), done.stdout + done.stderr
    raw = work / "resources/colon/raw"
    assert (raw / ".complete").is_file(), logs["colon"].read_text()
    assert (raw / "CRCHistoPhenotypes_2016_04_28/Classification/img4/img4.bmp").is_file()
    failure = logs["gone"].read_text()
    assert "crchistophenotypes_2016_04_28.zip" in failure and "login" in failure
    assert not (work / "resources/gone/raw/.complete").exists()
