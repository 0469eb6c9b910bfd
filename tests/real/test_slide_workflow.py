"""Slide datasets end to end: construct -> per-slide caches -> views.h5 (external links) -> ViewCache
-> SlideImage -> a Zoom-In forward and a training step with the mask loss; then the same through the
Snakemake checkpoint. The tiny Camelyon-like slides come from :mod:`fixtures_slides`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

from tests.real.fixtures_slides import make_camelyon_raw
from zoomin.data.constructed import read_constructed
from zoomin.data.slide_access import SlideImage
from zoomin.data.slide_cache import build_constructed_slide_cache
from zoomin.data.slide_reader import SlideReader
from zoomin.data.sources import construct_dataset
from zoomin.data.view_cache import ViewCache, build_slide_view_index, build_view_cache
from zoomin.errors import InputFileError, UserError

SIZE = 1024  # level 0 of every fixture slide (3 levels: 1024, 512, 256)
ZOOMIN = {"tile": 256, "subtile": 32, "s1": 0.0625, "s2": 0.25, "n": 8}
S1 = ZOOMIN["s1"]


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("slide_workflow") / "CAMELYON16"
    make_camelyon_raw(root, n_normal=2, n_tumour=2, test_labels=("Tumor", "Normal"), size=SIZE)
    return root


def build(raw: Path, out: Path, masks: str = "auto") -> Path:
    """construct -> one cache per slide -> views.h5, as the workflow's rules do; returns views.h5."""
    constructed = out / "constructed"
    construct_dataset("camelyon16", raw, constructed, name="cam", params={"val_fraction": 0.25, "masks": masks})
    for image_id in read_constructed(constructed).image_ids:
        build_constructed_slide_cache(constructed, image_id, out / "results" / "slides" / f"{image_id}.h5", [S1], 256)
    return build_slide_view_index(constructed, out / "results" / "slides", [S1], out / "results" / "views.h5")


@pytest.fixture(scope="module")
def views(raw, tmp_path_factory):
    return build(raw, tmp_path_factory.mktemp("built"))


def test_views_h5_links_every_slide_cache(views):
    with h5py.File(views, "r") as h5:
        assert h5.attrs["kind"] == "slide" and json.loads(h5.attrs["scales"]) == [S1]
        ids = list(h5["index/image_id"].asstr()[()])
        assert sorted(ids) == ["normal_001", "normal_002", "test_001", "test_002", "tumor_001", "tumor_002"]
        assert (h5["index/height"][()] == SIZE).all() and (h5["index/width"][()] == SIZE).all()
        for image_id in ids:
            link = h5["views"].get(image_id, getlink=True)
            assert isinstance(link, h5py.ExternalLink)
            assert (link.filename, link.path) == (f"slides/{image_id}.h5", "/")  # relative: results/ may move
            assert h5[f"views/{image_id}/s{S1:g}"].shape == (64, 64, 3)
            mask = h5["masks"].get(image_id, getlink=True)
            assert (mask.filename, mask.path) == (f"slides/{image_id}.h5", "/mask")


def test_view_cache_gives_slide_images_and_masks_after_moving_results(views, tmp_path, monkeypatch):
    moved = tmp_path / "elsewhere" / "results"
    shutil.copytree(views.parent, moved)
    monkeypatch.chdir(tmp_path)  # links resolve next to views.h5, not against the working directory
    cache = ViewCache(moved / "views.h5")
    assert cache.kind == "slide" and cache.has_masks
    image = cache.image("tumor_001")
    assert isinstance(image, SlideImage)
    assert image.cache_path == moved / "slides" / "tumor_001.h5"
    assert image.size == (SIZE, SIZE)
    with h5py.File(moved / "slides" / "tumor_001.h5", "r") as h5:
        assert np.array_equal(image.view_array(S1), h5[f"s{S1:g}"][()])
        assert np.array_equal(cache.view_array("tumor_001", S1), h5[f"s{S1:g}"][()])
    assert image.read_stats.total() == 0  # the stage-1 view came from the cache, not the slide
    tumour, normal = cache.mask_view("tumor_001", S1), cache.mask_view("normal_001", S1)
    assert tumour.shape == (64, 64) and tumour.max() == 255 and normal.max() == 0


def test_image_datasets_and_slide_datasets_are_not_mixed_up(views, raw, tmp_path):
    constructed = views.parent.parent / "constructed"
    with pytest.raises(InputFileError, match="build_slide_view_index"):
        build_view_cache(constructed, [S1], tmp_path / "v.h5")
    with pytest.raises(InputFileError, match="no view at scale"):
        build_slide_view_index(constructed, views.parent / "slides", [S1, 0.125], tmp_path / "v.h5")
    assert not (tmp_path / "v.h5").exists()


def test_zoomin_forward_on_slides_reads_no_level0_region_larger_than_a_patch(views, monkeypatch):
    from zoomin.models import build_model

    reads: list[tuple[int, int, int]] = []
    original = SlideReader._region  # every pixel read passes here, by one thread or several (read_many)

    def spy(self, level, top, left, height, width):
        reads.append((level, height, width))
        return original(self, level, top, left, height, width)

    monkeypatch.setattr(SlideReader, "_region", spy)
    cache = ViewCache(views)
    images = [cache.image("tumor_001"), cache.image("normal_001")]
    torch.manual_seed(0)
    model = build_model("zoomin", 2, **ZOOMIN).eval()
    with torch.no_grad():
        out = model(images, generator=torch.Generator().manual_seed(0))
    assert out.logits.shape == (2, 2) and torch.isfinite(out.logits).all()
    level0 = [h * w for level, h, w in reads if level == 0]
    assert level0 and max(level0) <= ZOOMIN["subtile"] ** 2
    assert sum(level0) <= 2 * ZOOMIN["n"] * ZOOMIN["subtile"] ** 2  # N patches per slide, nothing else
    assert sum(level0) < 0.01 * 2 * SIZE * SIZE
    stage2 = round(ZOOMIN["tile"] * ZOOMIN["s2"])
    assert all(level == 2 and h * w <= stage2**2 for level, h, w in reads if level != 0)  # ds 4 = 1 / s2


def test_training_passes_slide_masks_to_the_mask_loss(views, tmp_path, monkeypatch):
    from zoomin.training import loop, losses

    seen = []
    original = losses.total_loss

    def spy(*args, **kwargs):
        seen.append(kwargs.get("masks"))
        return original(*args, **kwargs)

    monkeypatch.setattr(losses, "total_loss", spy)
    loop.train(run_spec(mask_loss_weight=1.0, reference_class="negative"), views, run_outputs(tmp_path))
    masks = [m for batch in seen for m in batch]
    assert seen and all(m is not None and m.shape == (64, 64) for m in masks)
    assert all(0.0 <= float(m.min()) and float(m.max()) <= 1.0 for m in masks)
    assert any(float(m.sum()) > 0 for m in masks)  # the tumour slide's annotation reached the loss


@pytest.mark.parametrize("setting", ["mask_loss_weight", "pretrain_epochs"])
def test_annotation_settings_without_masks_are_a_clear_error(raw, tmp_path, setting):
    from zoomin.training import loop

    views = build(raw, tmp_path, masks="none")
    spec = run_spec(**{setting: 1})
    with pytest.raises(UserError, match=f"{setting}.*no masks"):
        loop.train(spec, views, run_outputs(tmp_path))
    assert not (tmp_path / "model.pt").exists()


def test_pretraining_reads_the_slides_masks_and_then_trains(views, tmp_path, monkeypatch):
    """Appendix-L pre-training on slides: every training slide's mask view reaches it, the tumour
    slide's tiles are labelled from its annotation, and the run then trains as usual."""
    from zoomin.data.splits import load_run_data
    from zoomin.training import loop, pretrain

    labelled = []
    original = pretrain.image_loss

    def spy(model, head, image, mask, generator):
        rows, cols = model.grid(image)
        labelled.append(float(pretrain.cell_labels(mask, image.size, 0, 0, rows, cols, model.tile).sum()))
        return original(model, head, image, mask, generator)

    monkeypatch.setattr(pretrain, "image_loss", spy)
    metadata = loop.train(run_spec(pretrain_epochs=2), views, run_outputs(tmp_path))
    assert len(labelled) == 2 * len(load_run_data(views, "s0").train)  # two epochs over the training slides
    assert max(labelled) > 0 and min(labelled) == 0  # the tumour slide has annotated tiles, the others none
    assert metadata["best_epoch"] == 1 and (tmp_path / "model.pt").exists()


def test_only_a_run_of_several_epochs_validates(views, tmp_path):
    """Validation chooses between epochs: a one-epoch run keeps its model without a validation pass."""
    from dataclasses import replace

    import pandas as pd

    from zoomin.training import loop

    for epochs in (1, 2):
        spec = run_spec()
        spec = replace(spec, training=replace(spec.training, epochs=epochs))
        loop.train(spec, views, run_outputs(tmp_path / str(epochs)))
        validated = pd.read_csv(tmp_path / str(epochs) / "history.csv")["val_accuracy"].notna()
        assert len(validated) == epochs and validated.all() == (epochs > 1) and validated.any() == (epochs > 1)


def run_spec(mask_loss_weight: float = 0.0, reference_class: str | None = None, pretrain_epochs: int = 0):
    """Run s0 of a Zoom-In on the slides: one epoch of batches of two, every other setting default."""
    from zoomin.config.run import MeasureConfig, ModelSpec, RunSettings, RunSpec, TrainingConfig

    return RunSpec(
        dataset="cam", method="zoomin_lenet", run="s0", seed=0,
        model=ModelSpec.from_dict({"type": "zoomin", "params": ZOOMIN}),
        training=TrainingConfig(
            epochs=1, batch_size=2, contrastive_start=0, mask_loss_weight=mask_loss_weight,
            pretrain_epochs=pretrain_epochs,
        ),
        measure=MeasureConfig(), settings=RunSettings(device="cpu"), n_folds=None, reference_class=reference_class,
    )


def run_outputs(folder: Path):
    from zoomin.training.loop import RunOutputs

    return RunOutputs(folder / "ckpt", folder / "model.pt", folder / "history.csv")


@pytest.mark.workflow
@pytest.mark.slow
def test_snakemake_builds_slide_caches_after_the_construct_checkpoint(tmp_path):
    from tests.workflow.helpers import copy_workflow, snakemake

    workdir = copy_workflow(tmp_path / "wf")
    raw_dir = workdir / "resources" / "cam" / "raw"
    make_camelyon_raw(raw_dir, n_normal=1, n_tumour=1, test_labels=("Tumor",), size=512)
    (raw_dir / ".complete").write_text("{}\n")  # as if download_dataset had run
    config = {
        "seed": 0,
        "device": "cpu",
        "methods": {"zoomin_lenet": {"model": "zoomin", "label": "Zoom-In Network", "params": {"feature": "lenet"}}},
        "datasets": {
            "cam": {
                "block": "Camelyon16", "table": "table2", "source": "camelyon16",
                "construct": {"val_fraction": 0.0}, "runs": {"seeds": [0]}, "reference_class": "negative",
                "methods": ["zoomin_lenet"], "model_params": {"zoomin": ZOOMIN},
                "training": {"epochs": 1, "batch_size": 2, "lr": 1e-3},
            }
        },
    }
    (workdir / "cam.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(workdir, "results/cam/views.h5", "--cores", "2", "--configfile", "cam.yaml")
    assert result.returncode == 0, result.stderr[-5000:]
    assert "slide_cache" in result.stdout + result.stderr
    slides = sorted(p.stem for p in (workdir / "results" / "cam" / "slides").glob("*.h5"))
    assert slides == ["normal_001", "test_001", "tumor_001"]
    assert len(list((workdir / "logs" / "cam" / "slides").glob("*.log"))) == 3
    cache = ViewCache(workdir / "results" / "cam" / "views.h5")
    assert sorted(cache.index.image_ids) == slides and isinstance(cache.image(slides[0]), SlideImage)
    assert cache.mask_view("tumor_001", S1).max() > 0 and cache.mask_view("normal_001", S1).max() == 0
    again = snakemake(workdir, "results/cam/views.h5", "-n", "--configfile", "cam.yaml")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
