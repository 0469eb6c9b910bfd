"""Kill-and-resume: a training process killed with SIGKILL mid-training and re-run ends bit for bit
where an uninterrupted run ends (CPU, same seed), says that it resumed and from which epoch, and a
re-run after completion changes nothing.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import torch

from tests.reliability.reliability_helpers import (
    ZOOMIN,
    assert_same_history,
    assert_same_weights,
    train_args,
    zoomin,
    zoomin_env,
)


def checkpoint_epoch(path: Path) -> int:
    """Epoch recorded in a checkpoint, 0 if there is none yet (it is replaced atomically, never partial)."""
    if not path.exists():
        return 0
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["state"]["epoch"])
    except FileNotFoundError:  # replaced between exists() and open()
        return 0


def test_sigkill_mid_training_then_rerun_is_bit_identical(colon_views, uninterrupted_run, tmp_path):
    out = tmp_path / "killed"
    checkpoint = out / "ckpt" / "last.pt"
    started = time.perf_counter()
    log_path = tmp_path / "first.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [*ZOOMIN, *map(str, train_args(colon_views, out))], cwd=tmp_path, env=zoomin_env(),
            stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            # wait for the checkpoint of epoch 2, then for the progress bar of epoch 3 to start,
            # and kill at once: an epoch takes ~0.15 s here, so the kill lands inside epoch 3
            deadline = time.monotonic() + 240
            while checkpoint_epoch(checkpoint) < 2 or "epoch 3/6" not in log_path.read_text():
                assert process.poll() is None, "training ended before it could be killed"
                assert time.monotonic() < deadline, "training did not reach epoch 3 within 240 s"
                time.sleep(0.01)
            process.send_signal(signal.SIGKILL)
        finally:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL
    killed_after = checkpoint_epoch(checkpoint)
    assert 2 <= killed_after < 6, f"the kill did not land mid-training (checkpoint of epoch {killed_after})"
    assert not (out / "model.pt").exists() and not (out / "history.csv").exists(), "outputs of a killed run"

    resumed = zoomin(*train_args(colon_views, out), cwd=tmp_path)
    elapsed = time.perf_counter() - started
    match = re.search(r"resumed from checkpoint (\S+) after epoch (\d+)", resumed.stderr)
    assert match, f"the resumed run does not say that it resumed:\n{resumed.stderr}"
    assert Path(match.group(1)) == checkpoint and int(match.group(2)) == killed_after
    assert_same_weights(uninterrupted_run / "model.pt", out / "model.pt")
    assert_same_history(uninterrupted_run / "history.csv", out / "history.csv")
    # the last checkpoint (optimizer, scheduler, RNG states too) matches as well
    ca = torch.load(uninterrupted_run / "ckpt" / "last.pt", map_location="cpu", weights_only=True)
    cb = torch.load(checkpoint, map_location="cpu", weights_only=True)
    for name in ("shuffle_rng", "sample_rng", "torch_rng"):
        assert torch.equal(ca[name], cb[name]), f"{name} differs after resuming"
    for key, value in ca["model"].items():
        assert torch.equal(value, cb["model"][key]), f"last weights differ in {key}"
    assert ca["scheduler"] == cb["scheduler"]
    for index, moments in ca["optimizer"]["state"].items():
        for name, value in moments.items():
            assert torch.equal(value, cb["optimizer"]["state"][index][name]), f"Adam {name} of parameter {index} differs"
    print(f"killed in epoch {killed_after + 1}, resumed after epoch {killed_after}: {elapsed:.1f} s")


def test_rerun_after_completion_changes_nothing(colon_views, uninterrupted_run, tmp_path):
    """Re-running a finished job in place (e.g. Snakemake --forcerun, or a retry after the outputs were
    written) resumes after the last epoch: no more training, the same model and history."""
    again = tmp_path / "again"
    shutil.copytree(uninterrupted_run, again)
    history_before = (again / "history.csv").read_text()
    result = zoomin(*train_args(colon_views, again), cwd=tmp_path)
    assert "after epoch 6" in result.stderr
    assert not re.search(r"epoch \d+: loss", result.stderr), "a finished run trained again"
    assert (again / "history.csv").read_text() == history_before
    assert_same_weights(uninterrupted_run / "model.pt", again / "model.pt")
    assert sorted(p.relative_to(again).as_posix() for p in again.rglob("*")) == sorted(
        p.relative_to(uninterrupted_run).as_posix() for p in uninterrupted_run.rglob("*")
    ), "a re-run left extra files behind"
