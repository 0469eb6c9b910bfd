"""Bad input: each case fails with a non-zero exit (or an exception) whose message names the file or
config key and the problem, and leaves no partial output behind. Odd but valid input (images smaller
than a tile, gray/RGBA/palette/16-bit images) works. docs/bad_input.md lists these cases together
with the ones tested elsewhere (tests/config/test_load.py, tests/data/test_constructed.py, tests/real/...).

The commands run in-process through ``zoomin.cli.main.main`` (the exit status and the one-line message a
user sees), which keeps this file fast; the subprocess behaviour of the same entry point is covered
by test_resume.py and test_determinism.py.
"""

from __future__ import annotations

import errno
import logging
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import zoomin.atomic as atomic_module
import zoomin.data.view_cache as view_cache_module
from tests.reliability.reliability_helpers import (
    RESUME_CONFIG,
    assert_same_history,
    assert_same_weights,
    evaluate_args,
    train_args,
)
from zoomin.cli.main import main
from zoomin.data.view_cache import ViewCache, build_view_cache
from zoomin.errors import InputFileError, OutputFileError
from zoomin.models import build_model
from zoomin.training.checkpoints import read_checkpoint, restore_checkpoint


def cli(capsys, *args) -> tuple[int, str]:
    """Run ``zoomin <args>`` in-process; return (exit status, stderr)."""
    capsys.readouterr()
    status = main([str(a) for a in args])
    return status, capsys.readouterr().err


def files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) if folder.exists() else []


def config_with(tmp_path: Path, change) -> Path:
    config = yaml.safe_load(RESUME_CONFIG.read_text())
    change(config)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def zoomin_params(config: dict) -> dict:
    return config["datasets"]["colon"]["model_params"]["zoomin"]


# --------------------------------------------------------------------------------------------------
# images: corrupt, small, odd colour modes


def test_truncated_png_at_build_views(colon_views, tmp_path, capsys):
    constructed = tmp_path / "constructed"
    shutil.copytree(colon_views.parent / "constructed", constructed)
    victim = constructed / "images" / "colon_00003.png"
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    out = tmp_path / "out" / "views.h5"
    status, err = cli(capsys, "build-views", "--constructed", constructed, "--scales", "0.1", "0.2", "--out", out, "--no-progress")
    assert status == 1
    assert "colon_00003.png" in err and "cannot decode" in err and "truncated" in err
    assert files_under(out.parent) == []


def test_image_that_is_not_an_image_at_build_views(colon_views, tmp_path, capsys):
    constructed = tmp_path / "constructed"
    shutil.copytree(colon_views.parent / "constructed", constructed)
    (constructed / "images" / "colon_00005.png").write_text("<html>404 not found</html>")
    out = tmp_path / "out" / "views.h5"
    status, err = cli(capsys, "build-views", "--constructed", constructed, "--scales", "0.1", "--out", out, "--no-progress")
    assert status == 1 and "colon_00005.png" in err and "cannot decode" in err
    assert files_under(out.parent) == []


ODD_IMAGES = {  # name: (PIL mode, height, width); all smaller than the 250-px tile of the config below
    "gray": ("L", 100, 100),
    "gray_alpha": ("LA", 100, 100),
    "rgba": ("RGBA", 100, 100),
    "palette": ("P", 100, 100),
    "gray16": ("I;16", 100, 100),
    "binary": ("1", 100, 100),
    "rgb_small": ("RGB", 60, 140),
    "cmyk": ("CMYK", 100, 100),
}


def _odd_image(mode: str, height: int, width: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    rgb = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16)).convert("I;16")
    return rgb.convert(mode)


@pytest.fixture(scope="module")
def odd_dataset(tmp_path_factory) -> dict[str, Path]:
    """image_folder dataset of gray/LA/RGBA/palette/16-bit/1-bit/CMYK images smaller than a tile,
    constructed and cached by the CLI, and a config that trains Zoom-In with tile 250 on it."""
    root = tmp_path_factory.mktemp("odd")
    raw = root / "raw"
    raw.mkdir()
    rows = ["image,label,split"]
    for i, (name, (mode, height, width)) in enumerate(ODD_IMAGES.items()):
        suffix = ".jpg" if mode == "CMYK" else ".png"
        _odd_image(mode, height, width, seed=i).save(raw / f"{name}{suffix}")
        rows.append(f"{name}{suffix},{'positive' if i % 2 else 'negative'},{['train', 'train', 'val', 'test'][i % 4]}")
    (raw / "labels.csv").write_text("\n".join(rows) + "\n")
    assert main(["construct", "--source", "image_folder", "--raw", str(raw), "--out", str(root / "constructed"),
                 "--name", "odd", "--param", "classes=negative,positive"]) == 0
    views = root / "views.h5"
    assert main(["build-views", "--constructed", str(root / "constructed"), "--scales", "0.1", "0.2",
                 "--out", str(views), "--no-progress"]) == 0
    config = yaml.safe_load(RESUME_CONFIG.read_text())
    config["training_defaults"]["epochs"] = 1
    dataset = config["datasets"].pop("colon")
    dataset.update(source="image_folder", runs={"seeds": [0]}, construct={"labels": str(raw / "labels.csv")})
    dataset["model_params"]["zoomin"]["tile"] = 250
    config["datasets"]["odd"] = dataset
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    return {"root": root, "views": views, "config": root / "config.yaml"}


def test_gray_rgba_palette_16bit_images_are_converted(odd_dataset):
    model = build_model("zoomin", 2, tile=250, subtile=16, s1=0.1, s2=0.2, n=4, feature="lenet")
    with ViewCache(odd_dataset["views"]) as cache:
        for name, (_, height, width) in ODD_IMAGES.items():
            image = cache.image(name)
            assert image.size == (height, width)
            for scale in (0.1, 0.2, 0.5):  # cached scales, and one decoded from the file
                assert image.view(scale).shape[0] == 3, f"{name} view at {scale} is not RGB"
            assert image.patches(torch.tensor([[height // 2, width // 2]]), 16).shape[-3] == 3
        out = model([cache.image(name) for name in ODD_IMAGES], generator=torch.Generator().manual_seed(0))
    assert out.logits.shape == (len(ODD_IMAGES), 2) and torch.isfinite(out.logits).all()


def test_images_smaller_than_a_tile_train_and_evaluate(odd_dataset, capsys):
    out = odd_dataset["root"] / "run"
    common = ["--config", odd_dataset["config"], "--dataset", "odd", "--method", "zoomin_lenet", "--run", "s0",
              "--views", odd_dataset["views"]]
    status, err = cli(capsys, "train", *common, "--out-model", out / "model.pt", "--out-history", out / "history.csv",
                      "--checkpoint-dir", out / "ckpt")
    assert status == 0, err
    status, err = cli(capsys, "evaluate", *common, "--model", out / "model.pt", "--out-metrics", out / "metrics.json")
    assert status == 0, err
    assert (out / "metrics.json").is_file()


# --------------------------------------------------------------------------------------------------
# config values and names given to `zoomin train`

BAD_CONFIG = {
    "s1 >= 1": (lambda c: zoomin_params(c).update(s1=1.5), "datasets.colon.model_params.zoomin.s1"),
    "s2 <= s1": (lambda c: zoomin_params(c).update(s2=0.05), "datasets.colon.model_params.zoomin.s2"),
    "N < 1": (lambda c: zoomin_params(c).update(n=0), "datasets.colon.model_params.zoomin.n"),
    "P > T": (lambda c: zoomin_params(c).update(subtile=120), "datasets.colon.model_params.zoomin.subtile"),
    "unknown method in a dataset": (lambda c: c["datasets"]["colon"]["methods"].append("magic"), "datasets.colon.methods"),
    "unknown model type": (lambda c: c["methods"]["zoomin_lenet"].update(model="vit"), "methods.zoomin_lenet.model"),
    "batch size 0": (lambda c: c["datasets"]["colon"].setdefault("training", {}).update(batch_size=0), "datasets.colon.training.batch_size"),
    "lr as text": (lambda c: c["datasets"]["colon"].setdefault("training", {}).update(lr="fast"), "datasets.colon.training.lr"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIG))
def test_invalid_config_values_through_train(colon_views, tmp_path, capsys, case):
    change, key = BAD_CONFIG[case]
    config = config_with(tmp_path, change)
    out = tmp_path / "out"
    status, err = cli(capsys, *train_args(colon_views, out, config=config))
    assert status == 1
    assert f"config key '{key}'" in err, err
    assert not out.exists()


@pytest.mark.parametrize(
    "option, value, key",
    [("--dataset", "imagenet", "datasets"), ("--method", "ats", "datasets.colon.methods"),
     ("--run", "r0f7", "datasets.colon.runs"), ("--run", "r0f0;ls", "datasets.colon.runs")],
)
def test_unknown_dataset_method_or_run(colon_views, tmp_path, capsys, option, value, key):
    out = tmp_path / "out"
    args = [str(a) for a in train_args(colon_views, out)]
    args[args.index(option) + 1] = value
    status, err = cli(capsys, *args)
    assert status == 1 and f"config key '{key}'" in err and value in err
    assert not out.exists()


def test_view_cache_of_an_older_format_through_train(colon_views, tmp_path, capsys):
    views = tmp_path / "views.h5"
    shutil.copy(colon_views, views)
    with h5py.File(views, "a") as h5:
        h5.attrs["format_version"] = 0
    out = tmp_path / "out"
    status, err = cli(capsys, *train_args(views, out))
    assert status == 1 and "views.h5" in err and "format_version 0" in err and "rebuild" in err
    assert not out.exists()


# --------------------------------------------------------------------------------------------------
# checkpoints (last.pt) and models (model.pt) that are not what they claim


def _resume_with(colon_views, uninterrupted_run, tmp_path, capsys, tamper, config=RESUME_CONFIG):
    """Put a tampered copy of a finished run's last.pt into a fresh run folder and run `zoomin train`."""
    out = tmp_path / "out"
    (out / "ckpt").mkdir(parents=True)
    last = out / "ckpt" / "last.pt"
    shutil.copy(uninterrupted_run / "ckpt" / "last.pt", last)
    tamper(last)
    before = last.read_bytes()
    status, err = cli(capsys, *train_args(colon_views, out, config=config))
    assert status == 1
    assert str(last) in err, err
    assert last.read_bytes() == before, "the checkpoint was changed or deleted"
    assert files_under(out) == ["ckpt", "ckpt/last.pt"], "partial outputs left"
    return err


def _edit_checkpoint(edit):
    def tamper(path: Path) -> None:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        edit(payload)
        torch.save(payload, path)
    return tamper


def test_checkpoint_that_is_not_a_torch_file(colon_views, uninterrupted_run, tmp_path, capsys):
    err = _resume_with(colon_views, uninterrupted_run, tmp_path, capsys, lambda p: p.write_text("not a checkpoint"))
    assert "is not a readable PyTorch checkpoint" in err


def test_truncated_checkpoint(colon_views, uninterrupted_run, tmp_path, capsys):
    err = _resume_with(colon_views, uninterrupted_run, tmp_path, capsys,
                       lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]))
    assert "is not a readable PyTorch checkpoint" in err


def test_torch_file_that_is_not_a_checkpoint(colon_views, uninterrupted_run, tmp_path, capsys):
    err = _resume_with(colon_views, uninterrupted_run, tmp_path, capsys, lambda p: torch.save(torch.zeros(3), p))
    assert "is not a zoomin training checkpoint" in err


def test_checkpoint_of_another_architecture(colon_views, uninterrupted_run, tmp_path, capsys):
    ats = build_model("ats", 2, scale=0.2, patch=16, n=4).state_dict()
    err = _resume_with(colon_views, uninterrupted_run, tmp_path, capsys,
                       _edit_checkpoint(lambda payload: payload.update(model=ats)))
    assert "does not match the model architecture" in err


def test_checkpoint_of_another_model_type(colon_views, uninterrupted_run, tmp_path, capsys):
    err = _resume_with(colon_views, uninterrupted_run, tmp_path, capsys,
                       _edit_checkpoint(lambda payload: payload["identity"].update(model_type="ats")))
    assert "belongs to another run or configuration" in err and "model_type: checkpoint 'ats', now 'zoomin'" in err


def test_checkpoint_with_missing_parts(colon_views, uninterrupted_run, tmp_path, capsys):
    err = _resume_with(colon_views, uninterrupted_run, tmp_path, capsys,
                       _edit_checkpoint(lambda payload: payload.pop("optimizer")))
    assert "incomplete checkpoint (no optimizer)" in err


def _outdated_checkpoint_starts_over(colon_views, uninterrupted_run, tmp_path, capsys, caplog, config, tamper=None):
    """A checkpoint of this run left under an earlier config or dataset (Snakemake re-runs a job whose
    params changed) is neither continued nor used for the result: training starts over, with a
    warning, and ends exactly where a fresh run with the new config ends."""
    caplog.set_level(logging.INFO, logger="zoomin")
    fresh = tmp_path / "fresh"
    assert cli(capsys, *train_args(colon_views, fresh, config=config))[0] == 0
    out = tmp_path / "out"
    (out / "ckpt").mkdir(parents=True)
    shutil.copy(uninterrupted_run / "ckpt" / "last.pt", out / "ckpt" / "last.pt")
    if tamper is not None:
        tamper(out / "ckpt" / "last.pt")
    caplog.clear()
    status, err = cli(capsys, *train_args(colon_views, out, config=config))
    assert status == 0, err
    assert "is from an earlier configuration" in caplog.text and "starting over" in caplog.text
    assert "resumed from" not in caplog.text
    assert_same_weights(fresh / "model.pt", out / "model.pt")
    assert_same_history(fresh / "history.csv", out / "history.csv")
    return caplog.text


def test_checkpoint_left_by_another_config_starts_over(colon_views, uninterrupted_run, tmp_path, capsys, caplog):
    config = config_with(tmp_path, lambda c: c["datasets"]["colon"].setdefault("training", {}).update(lr=5e-4, epochs=2))
    text = _outdated_checkpoint_starts_over(colon_views, uninterrupted_run, tmp_path, capsys, caplog, config)
    assert "training.lr: checkpoint 0.001, now 0.0005" in text


def test_checkpoint_past_the_configured_epochs_starts_over(colon_views, uninterrupted_run, tmp_path, capsys, caplog):
    config = config_with(tmp_path, lambda c: c["datasets"]["colon"].setdefault("training", {}).update(epochs=3))
    text = _outdated_checkpoint_starts_over(colon_views, uninterrupted_run, tmp_path, capsys, caplog, config)
    assert "from epoch 6, past training.epochs 3" in text


def test_checkpoint_of_another_dataset_starts_over(colon_views, uninterrupted_run, tmp_path, capsys, caplog):
    config = config_with(tmp_path, lambda c: c["datasets"]["colon"].setdefault("training", {}).update(epochs=2))
    text = _outdated_checkpoint_starts_over(
        colon_views, uninterrupted_run, tmp_path, capsys, caplog, config,
        tamper=_edit_checkpoint(lambda payload: payload["identity"].update(data="0" * 64)),
    )
    assert "data: checkpoint '000" in text


def test_more_epochs_continue_from_the_checkpoint(colon_views, uninterrupted_run, tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO, logger="zoomin")
    config = config_with(tmp_path, lambda c: c["datasets"]["colon"].setdefault("training", {}).update(epochs=7))
    out = tmp_path / "out"
    (out / "ckpt").mkdir(parents=True)
    shutil.copy(uninterrupted_run / "ckpt" / "last.pt", out / "ckpt" / "last.pt")
    status, err = cli(capsys, *train_args(colon_views, out, config=config))
    assert status == 0, err
    assert "after epoch 6" in caplog.text and len((out / "history.csv").read_text().splitlines()) == 1 + 7


@pytest.mark.parametrize(
    "case, tamper, problem",
    [
        ("text file", lambda run, p: p.write_text("hello"), "is not a readable PyTorch checkpoint"),
        ("training checkpoint", lambda run, p: shutil.copy(run / "ckpt" / "last.pt", p), "is not a zoomin model file"),
        ("another architecture", None, "does not match the zoomin architecture"),
    ],
)
def test_evaluate_refuses_a_bad_model_file(colon_views, uninterrupted_run, tmp_path, capsys, case, tamper, problem):
    out = tmp_path / "out"
    out.mkdir()
    model = out / "model.pt"
    if tamper is not None:
        tamper(uninterrupted_run, model)
    else:
        payload = torch.load(uninterrupted_run / "model.pt", map_location="cpu", weights_only=True)
        payload["state_dict"] = build_model("zoomin", 2, tile=100, subtile=16, s1=0.1, s2=0.2, n=4,
                                            feature="resnet16").state_dict()
        torch.save(payload, model)
    status, err = cli(capsys, *evaluate_args(colon_views, out))
    assert status == 1 and str(model) in err and problem in err, err
    assert files_under(out) == ["model.pt"]


# --------------------------------------------------------------------------------------------------
# training that diverges


def test_nan_loss_stops_naming_run_and_epoch(colon_views, tmp_path, capsys):
    config = config_with(tmp_path, lambda c: c["datasets"]["colon"].setdefault("training", {}).update(lr=1e30))
    out = tmp_path / "out"
    status, err = cli(capsys, *train_args(colon_views, out, config=config))
    assert status == 1
    assert "run r0f0: the training loss became nan in epoch" in err and "training.lr" in err, err
    assert not (out / "model.pt").exists() and not (out / "history.csv").exists()
    assert not list(out.glob(".*.tmp")) and not list((out / "ckpt").glob(".*.tmp"))


def test_inf_loss_stops_naming_run_and_epoch(colon_views, tmp_path, capsys, monkeypatch):
    import zoomin.training.losses as losses_module

    original = losses_module.total_loss
    calls = {"n": 0}

    def diverging(*args, **kwargs):
        parts = original(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] > 3:  # epoch 2 of 2 batches per epoch
            parts.total = parts.total * float("inf")
        return parts

    monkeypatch.setattr(losses_module, "total_loss", diverging)
    out = tmp_path / "out"
    status, err = cli(capsys, *train_args(colon_views, out))
    assert status == 1 and "run r0f0: the training loss became inf in epoch 2" in err, err
    assert files_under(out) == ["ckpt", "ckpt/last.pt"]  # epoch 1 kept for inspection; no model, no history


# --------------------------------------------------------------------------------------------------
# disk full


def test_disk_full_while_writing_the_view_cache(colon_views, tmp_path, capsys, monkeypatch):
    """HDF5 raising ENOSPC mid-write (simulated): a clear error naming views.h5, nothing left."""
    calls = {"n": 0}
    original = h5py.Group.create_dataset

    def full(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", full)
    out = tmp_path / "out" / "views.h5"
    status, err = cli(capsys, "build-views", "--constructed", colon_views.parent / "constructed", "--scales", "0.1",
                      "0.2", "--out", out, "--no-progress")
    assert status == 1
    assert str(out) in err and "could not be written" in err and "No space left on device" in err, err
    assert files_under(out.parent) == []


def test_disk_nearly_full_stops_the_view_cache_before_hdf5_fails(colon_views, tmp_path, monkeypatch):
    """HDF5 swallows failed chunk writes and may crash on close when the disk really fills up, so
    the build checks for room before each image; a disk that fills up mid-build is refused cleanly."""
    real = shutil.disk_usage
    calls = {"n": 0}

    def filling(path):
        calls["n"] += 1
        usage = real(path)
        return usage._replace(free=usage.free if calls["n"] < 4 else 1000)

    monkeypatch.setattr(view_cache_module.shutil, "disk_usage", filling)
    out = tmp_path / "out" / "views.h5"
    with pytest.raises(OutputFileError) as error:
        build_view_cache(colon_views.parent / "constructed", [0.1, 0.2], out, progress=False)
    assert error.value.path == out and "no space left" in str(error.value) and "1000 bytes free" in str(error.value)
    assert files_under(out.parent) == []


def test_disk_full_while_saving_a_checkpoint(colon_views, tmp_path, capsys, monkeypatch):
    """torch.save hides ENOSPC behind 'unexpected pos'; the message still says the disk is full, the
    previous checkpoint survives and nothing else is left."""
    import zoomin.training.checkpoints as checkpoints_module

    saves = {"n": 0}
    real_save = torch.save

    def save(obj, path, *args, **kwargs):
        saves["n"] += 1
        if saves["n"] == 2:  # the checkpoint of epoch 2
            Path(path).write_bytes(b"partial")
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
        return real_save(obj, path, *args, **kwargs)

    real_usage = shutil.disk_usage
    monkeypatch.setattr(checkpoints_module.torch, "save", save)
    monkeypatch.setattr(atomic_module.shutil, "disk_usage", lambda p: real_usage(p)._replace(free=0))
    out = tmp_path / "out"
    status, err = cli(capsys, *train_args(colon_views, out))
    assert status == 1
    assert f"{out / 'ckpt' / 'last.pt'}: could not be written: the disk is full" in err, err
    assert files_under(out) == ["ckpt", "ckpt/last.pt"]
    payload = torch.load(out / "ckpt" / "last.pt", map_location="cpu", weights_only=True)
    assert payload["state"]["epoch"] == 1


# --------------------------------------------------------------------------------------------------
# library-level guarantees behind the cases above


def test_restore_checkpoint_refuses_another_architecture_directly(uninterrupted_run):
    path = uninterrupted_run / "ckpt" / "last.pt"
    payload = read_checkpoint(path)
    model = build_model("zoomin", 2, tile=100, subtile=16, s1=0.1, s2=0.2, n=4, feature="resnet16")
    optimizer = torch.optim.Adam(model.parameters())
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1)
    with pytest.raises(InputFileError) as error:
        restore_checkpoint(
            payload, path, model, optimizer, scheduler, torch.Generator(), torch.Generator(), payload["identity"]
        )
    assert error.value.path == path and "does not match the model architecture" in error.value.problem
