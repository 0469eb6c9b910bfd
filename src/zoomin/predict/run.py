"""``zoomin predict``: a trained model applied to new images and slides, with its outputs.

For each input (:mod:`zoomin.predict.inputs`) the model runs at inference (eval mode, no autograd:
the bounded-memory path of :mod:`zoomin.models.bounded_memory`) through
:func:`zoomin.training.inference.image_prediction` -- the function the test evaluation uses too --
once per test-time draw (the run's ``test_draws``, or ``draws``; once for a model that draws
nothing), the probabilities averaged over the draws: so with the run's seed, sampling mode and
draws an image gets exactly the probabilities ``metrics.json`` recorded for it. The heatmaps and
annotations show the attention of the first draw. Outputs in ``out_dir``:

* ``predictions.csv`` -- one row per input: id, path, kind, size, predicted class, one ``p_<class>``
  column per class, the spread of the predicted class's probability over the draws
  (``draw_spread``: standard deviation, 0 for a model that draws nothing, empty after one draw of
  a sampling model), the seed, sampling mode and draws, the number of draws N the image's stage 1
  took (``n``; empty for a model without counted draws; the image's own N with ``n_rule:
  perplexity``), the model's type, dataset, method and run, and the names of the files below;
* ``<id>.heatmap.png`` (:mod:`zoomin.predict.heatmap`), ``<id>.geojson`` and, with ``asap``,
  ``<id>.xml`` (:mod:`zoomin.predict.annotations`) -- for models with attention; a model without
  (a CNN) gets the CSV only, and the log says so.

Nothing is half-written: every input is probed before the model runs, everything is written to a
temporary folder next to ``out_dir`` and moved into place only when every input succeeded
(``predictions.csv`` last); on any error the temporary folder is removed and ``out_dir`` is left as
it was.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from zoomin.atomic import atomic_path, usual_mode
from zoomin.config.experiment import DEFAULT_SLIDE_TILE
from zoomin.config.outputs import PredictSettings
from zoomin.errors import OutputFileError
from zoomin.models.registry import model_type
from zoomin.predict.annotations import asap_xml, geojson_collection
from zoomin.predict.expectations import check_input
from zoomin.predict.heatmap import plot_heatmap
from zoomin.predict.host_memory import trim_freed_memory
from zoomin.predict.inputs import PredictInput, open_input, resolve_inputs
from zoomin.training.checkpoints import load_trained_model
from zoomin.training.device import choose_device
from zoomin.training.inference import image_prediction

log = logging.getLogger(__name__)

CSV_NAME = "predictions.csv"
TISSUE_SCALE = 1 / 32  # the slide cache's view when the model reads no whole-slide view itself


def predict(
    model_path: str | Path,
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    settings: PredictSettings | None = None,
    device: str = "auto",
    cache_dir: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Predict on ``inputs`` with the model at ``model_path``; write ``out_dir`` (module docstring).

    ``cache_dir`` keeps the slides' view caches (reused by a later call); by default they are built
    in a temporary folder and deleted. Returns the rows of ``predictions.csv``.
    """
    settings = settings or PredictSettings()
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputFileError(out_dir, "exists and is not a folder")
    torch_device = choose_device(device)
    model, meta = load_trained_model(Path(model_path), torch_device)
    items = resolve_inputs(inputs)
    params = model_type(meta["model_type"]).make_params(meta["model_params"])
    view_scales = tuple(float(s) for s in params.view_scales())
    cache_scales = [s for s in view_scales if s < 1] or [TISSUE_SCALE]
    tile = params.tile_size() or DEFAULT_SLIDE_TILE
    seed = settings.seed if settings.seed is not None else int(meta.get("seed", 0))
    sampling = settings.sampling or meta.get("sampling_at_test") or "sample"
    draws = settings.draws if settings.draws is not None else int(meta.get("test_draws", 1))
    if model_type(meta["model_type"]).attention == "none":
        log.info("the %s model has no attention: %s only, no heatmaps or GeoJSON", meta["model_type"], CSV_NAME)
    log.info(
        "%d input(s); seed %d, sampling %s, %d draw(s), device %s", len(items), seed, sampling, draws, torch_device
    )

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        with _cache_folder(cache_dir) as caches:
            rows = []
            for item in items:
                with open_input(item, cache_scales, tile, caches) as image:
                    check_input(model, meta, view_scales, item, image, settings.ignore_mpp)
                    rows.append(
                        _predict_one(model, meta, item, image, staging, torch_device, (seed, sampling, draws), settings)
                    )
                trim_freed_memory()  # what this input's tensors left in the heap (zoomin.predict.host_memory)
        _write_csv(staging / CSV_NAME, rows, meta["classes"])
        _publish(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("wrote %s (%d image(s))", out_dir / CSV_NAME, len(rows))
    return rows


def _predict_one(
    model: torch.nn.Module,
    meta: dict[str, Any],
    item: PredictInput,
    image: Any,
    staging: Path,
    device: torch.device,
    draw_settings: tuple[int, str, int],
    settings: PredictSettings,
) -> dict[str, Any]:
    classes = list(meta["classes"])
    seed, sampling, draws = draw_settings
    prediction = image_prediction(model, image, device, seed, sampling, draws)
    output = prediction.first
    probabilities = prediction.probabilities.tolist()
    predicted = classes[max(range(len(classes)), key=probabilities.__getitem__)]
    height, width = image.size
    row: dict[str, Any] = {
        "image_id": item.image_id,
        "path": str(item.path),
        "kind": item.kind,
        "height": height,
        "width": width,
        "predicted": predicted,
        **{f"p_{name}": p for name, p in zip(classes, probabilities)},
        "draw_spread": "" if prediction.spread is None else prediction.spread,
        "seed": seed,
        "sampling": sampling,
        "draws": draws,
        "n": "" if prediction.sample_size is None else prediction.sample_size,
        "model_type": meta["model_type"],
        "dataset": meta.get("dataset", ""),
        "method": meta.get("method", ""),
        "run": meta.get("run", ""),
        "heatmap": "",
        "geojson": "",
        "asap": "",
    }
    log.info("%s: %s (p = %.3f)", item.image_id, predicted, max(probabilities))
    if not output.attention:
        return row
    attention = output.attention[0].detached()
    row["heatmap"] = f"{item.image_id}.heatmap.png"
    title = f"{item.image_id}: predicted {predicted} (p = {max(probabilities):.3f}; {sampling}, seed {seed})"
    plot_heatmap(image, attention, staging / row["heatmap"], title, settings.thumbnail)
    row["geojson"] = f"{item.image_id}.geojson"
    with atomic_path(staging / row["geojson"]) as tmp:
        tmp.write_text(json.dumps(geojson_collection(attention, predicted, classes)), encoding="utf-8")
    if settings.asap:
        row["asap"] = f"{item.image_id}.xml"
        with atomic_path(staging / row["asap"]) as tmp:
            tmp.write_text(asap_xml(attention, predicted, classes), encoding="utf-8")
    return row


@contextlib.contextmanager
def _cache_folder(cache_dir: str | Path | None) -> Iterator[Path]:
    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        yield Path(cache_dir)
        return
    with tempfile.TemporaryDirectory(prefix="zoomin-slide-caches-") as folder:
        yield Path(folder)


def _write_csv(path: Path, rows: list[dict[str, Any]], classes: Sequence[str]) -> None:
    columns = ["image_id", "path", "kind", "height", "width", "predicted", *(f"p_{c}" for c in classes)]
    columns += ["draw_spread", "seed", "sampling", "draws", "n", "model_type", "dataset", "method", "run"]
    columns += ["heatmap", "geojson", "asap"]
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: format(v, ".9g") if isinstance(v, float) else v for k, v in row.items()})


def _publish(staging: Path, out_dir: Path) -> None:
    """Move the finished outputs into ``out_dir``: the whole folder in one rename when it is new,
    else file by file with ``predictions.csv`` last."""
    os.chmod(staging, usual_mode(directory=True))  # mkdtemp makes it private; outputs get the usual permissions
    for path in staging.iterdir():
        os.chmod(path, usual_mode())
    if not out_dir.exists():
        os.replace(staging, out_dir)
        return
    names = sorted(p.name for p in staging.iterdir() if p.name != CSV_NAME) + [CSV_NAME]
    for name in names:
        os.replace(staging / name, out_dir / name)
