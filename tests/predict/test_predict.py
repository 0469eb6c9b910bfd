"""``zoomin predict``: the CSV, heatmaps, GeoJSON and ASAP XML it writes; the probabilities it
gives (those of the evaluation, for the same seed); and the inputs and models it refuses, leaving
no output behind."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import zoomin.predict.annotations as annotations_module
import zoomin.predict.expectations as expectations_module
from tests.real.fixtures_images import corrupt
from tests.real.fixtures_slides import MPP, make_slide, make_truncated_tiff
from tests.workflow.helpers import TINY_CONFIG
from zoomin.cli.main import main
from zoomin.config.load import load
from zoomin.config.outputs import PredictSettings
from zoomin.data.asap_xml import read_asap_xml
from zoomin.data.synthetic import generate
from zoomin.data.view_cache import build_view_cache
from zoomin.errors import InputFileError
from zoomin.image_access import InMemoryImage
from zoomin.models.registry import model_type
from zoomin.predict import predict
from zoomin.predict.inputs import resolve_inputs
from zoomin.training.checkpoints import load_trained_model
from zoomin.training.evaluate import evaluate

pytestmark = pytest.mark.usefixtures("single_thread")

CLASSES = ["negative", "positive"]
PARAMS = {
    "zoomin": {"tile": 64, "subtile": 16, "s1": 0.125, "s2": 0.25, "n": 6},
    "ats": {"scale": 0.25, "patch": 16, "n": 5},
    "cnn": {"scale": 0.25},
}


def save_model(path: Path, kind: str, **meta) -> Path:
    """A model.pt as training writes it (random weights: what is tested does not need learning)."""
    torch.manual_seed(0)
    params = model_type(kind).make_params(PARAMS[kind])
    model = model_type(kind).build(len(CLASSES), params)
    metadata = {
        "dataset": "toy", "method": kind, "model_type": kind, "model_params": params.to_dict(),
        "classes": CLASSES, "seed": 3, "run": "s0", "sampling_at_test": "sample", "mpp": None, **meta,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict(), "metadata": metadata}, path)
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (200, 150, 3), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(rng.integers(0, 256, (130, 170), dtype=np.uint8)).save(folder / "b.jpg")  # gray
    make_slide(folder / "slide.tif", size=1024, levels=3)
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture(scope="module")
def zoomin_run(inputs, tmp_path_factory) -> tuple[Path, list[dict]]:
    root = tmp_path_factory.mktemp("zoomin_run")
    model = save_model(root / "model.pt", "zoomin")
    out = root / "out"
    predict(model, [inputs], out, PredictSettings(asap=True), device="cpu")
    return out, read_csv(out / "predictions.csv")


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def siblings(folder: Path) -> list[str]:
    """Everything in the folder's parent, to check that no temporary folder was left."""
    return sorted(p.name for p in folder.parent.iterdir())


# ---------------------------------------------------------------------------- outputs
def test_csv_has_one_row_per_input_with_probabilities_seed_and_sampling(zoomin_run, inputs):
    out, rows = zoomin_run
    assert [r["image_id"] for r in rows] == ["a", "b", "slide"]  # notes.txt is not an image: skipped
    assert [r["kind"] for r in rows] == ["image", "image", "slide"]
    assert [(int(r["height"]), int(r["width"])) for r in rows] == [(200, 150), (130, 170), (1024, 1024)]
    for row in rows:
        probabilities = [float(row[f"p_{c}"]) for c in CLASSES]
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-6)
        assert row["predicted"] == CLASSES[int(np.argmax(probabilities))]
        assert (row["seed"], row["sampling"], row["model_type"]) == ("3", "sample", "zoomin")
        for column in ("heatmap", "geojson", "asap"):
            assert (out / row[column]).stat().st_size > 100
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["predictions.csv"] + [f"{i}.{ext}" for i in ("a", "b", "slide") for ext in ("heatmap.png", "geojson", "xml")]
    )
    with Image.open(out / "slide.heatmap.png") as png:
        assert png.size[0] > 800


def test_geojson_is_valid_inside_the_image_and_carries_attention_and_class(zoomin_run):
    out, rows = zoomin_run
    for row in rows:
        collection = json.loads((out / row["geojson"]).read_text())
        height, width = int(row["height"]), int(row["width"])
        assert collection["type"] == "FeatureCollection"
        tiles = [f for f in collection["features"] if f["properties"]["objectType"] == "tile"]
        subtiles = [f for f in collection["features"] if f["properties"]["objectType"] == "annotation"]
        assert len(tiles) + len(subtiles) == len(collection["features"])
        assert len(tiles) == math.ceil(height / 64) * math.ceil(width / 64)  # every tile of the grid
        assert 1 <= len(subtiles) <= 6  # fewer when a sub-tile was drawn in the zero padding past the image
        for feature in collection["features"]:
            assert feature["type"] == "Feature" and feature["geometry"]["type"] == "Polygon"
            (ring,) = feature["geometry"]["coordinates"]
            assert len(ring) == 5 and ring[0] == ring[-1]  # closed
            xs, ys = [x for x, _ in ring], [y for _, y in ring]
            assert 0 <= min(xs) < max(xs) <= width and 0 <= min(ys) < max(ys) <= height
        measure = [{m["name"]: m["value"] for m in f["properties"]["measurements"]} for f in tiles]
        assert sum(m["attention"] for m in measure) == pytest.approx(1.0, abs=1e-5)
        assert sum(m["draws"] for m in measure) == 6  # N = 6 draws
        opened = [f for f, m in zip(tiles, measure) if m["opened"]]
        assert 1 <= len(opened) <= 6 and all(m["draws"] >= m["opened"] for m in measure)
        for feature in subtiles:
            assert feature["properties"]["classification"]["name"] == row["predicted"]
            values = {m["name"]: m["value"] for m in feature["properties"]["measurements"]}
            assert values["a*b"] == pytest.approx(values["tile attention a"] * values["sub-tile attention b"])
            ring = feature["geometry"]["coordinates"][0]
            assert max(x for x, _ in ring) - min(x for x, _ in ring) <= 16


def test_geojson_round_trips_through_shapely(zoomin_run):
    pytest.importorskip("shapely", reason="shapely (the test extra) checks the GeoJSON geometry")
    from shapely.geometry import mapping, shape

    out, rows = zoomin_run
    collection = json.loads((out / rows[2]["geojson"]).read_text())
    for feature in collection["features"]:
        polygon = shape(feature["geometry"])
        assert polygon.is_valid and polygon.area > 0
        ring = feature["geometry"]["coordinates"][0]
        xs, ys = [x for x, _ in ring], [y for _, y in ring]
        assert polygon.area == pytest.approx((max(xs) - min(xs)) * (max(ys) - min(ys)))
        again = mapping(polygon)
        assert again["type"] == "Polygon"
        assert [list(point) for point in again["coordinates"][0]] == ring


def test_asap_xml_reads_back_with_the_geojson_boxes(zoomin_run):
    out, rows = zoomin_run
    row = rows[0]
    groups = [f"sub-tiles: {row['predicted']}", annotations_module.TILE_GROUP]
    polygons = read_asap_xml(out / row["asap"], tumour_groups=groups, excluded_groups=())
    features = json.loads((out / row["geojson"]).read_text())["features"]
    boxes = sorted(
        tuple(map(tuple, f["geometry"]["coordinates"][0][:-1]))
        for f in features
        if f["properties"]["objectType"] == "annotation"
        or {m["name"]: m["value"] for m in f["properties"]["measurements"]}.get("opened")
    )
    assert sorted(tuple(map(tuple, p.points.tolist())) for p in polygons) == boxes
    assert {p.group for p in polygons} == set(groups)


def test_one_stage_model_and_a_model_without_attention(tmp_path, inputs):
    out = tmp_path / "ats"
    rows = predict(save_model(tmp_path / "ats.pt", "ats"), [inputs / "a.png"], out, device="cpu")
    collection = json.loads((out / "a.geojson").read_text())
    tiles = [f for f in collection["features"] if f["properties"]["objectType"] == "tile"]
    assert len(tiles) == 50 * 38  # one per position of the 0.25 view
    assert len(collection["features"]) - len(tiles) == 5
    out = tmp_path / "cnn"
    rows = predict(save_model(tmp_path / "cnn.pt", "cnn"), [inputs / "a.png", inputs / "slide.tif"], out, device="cpu")
    assert sorted(p.name for p in out.iterdir()) == ["predictions.csv"]
    assert [r["heatmap"] for r in rows] == ["", ""]


def test_fine_attention_maps_merge_into_blocks_keeping_the_attention(tmp_path, inputs, monkeypatch):
    monkeypatch.setattr(annotations_module, "MAX_CELLS", 100)
    out = tmp_path / "ats"
    predict(save_model(tmp_path / "ats.pt", "ats"), [inputs / "a.png"], out, device="cpu")
    tiles = [f for f in json.loads((out / "a.geojson").read_text())["features"] if f["properties"]["objectType"] == "tile"]
    assert len(tiles) <= 100
    total = sum(m["value"] for f in tiles for m in f["properties"]["measurements"] if m["name"] == "attention")
    assert total == pytest.approx(1.0, abs=1e-5)


def test_existing_output_folder_gets_the_new_files(tmp_path, inputs):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    predict(save_model(tmp_path / "m.pt", "zoomin"), [inputs / "a.png"], out, device="cpu")
    assert sorted(p.name for p in out.iterdir()) == ["a.geojson", "a.heatmap.png", "keep.txt", "predictions.csv"]
    assert siblings(out) == ["m.pt", "out"]


def test_ids_stay_unique_and_the_slide_cache_is_reused(tmp_path, inputs):
    twin = tmp_path / "twin"
    twin.mkdir()
    Image.open(inputs / "a.png").save(twin / "a.jpg")
    items = resolve_inputs([inputs / "a.png", twin / "a.jpg", inputs / "a.png", inputs / "slide.tif"])
    assert [(i.image_id, i.kind) for i in items] == [("a.png", "image"), ("a.jpg", "image"), ("slide", "slide")]
    caches = tmp_path / "caches"
    model = save_model(tmp_path / "m.pt", "zoomin")
    first = predict(model, [inputs / "slide.tif"], tmp_path / "one", device="cpu", cache_dir=caches)
    built = (caches / "slide.h5").stat().st_mtime_ns
    second = predict(model, [inputs / "slide.tif"], tmp_path / "two", device="cpu", cache_dir=caches)
    assert (caches / "slide.h5").stat().st_mtime_ns == built
    assert first == second


def test_sampling_and_seed_change_what_is_drawn(tmp_path, inputs):
    model = save_model(tmp_path / "m.pt", "zoomin")
    runs = {
        name: predict(model, [inputs / "a.png"], tmp_path / name, settings, device="cpu")[0]
        for name, settings in {
            "default": PredictSettings(),
            "again": PredictSettings(seed=3),
            "other": PredictSettings(seed=4),
            "topk": PredictSettings(sampling="topk"),
            "topk_other": PredictSettings(sampling="topk", seed=4),
        }.items()
    }
    assert runs["default"]["p_positive"] == runs["again"]["p_positive"]  # the run's seed is 3
    assert runs["other"]["p_positive"] != runs["default"]["p_positive"]
    geo = {name: (tmp_path / name / "a.geojson").read_text() for name in runs}
    assert geo["default"] == geo["again"] and geo["default"] != geo["other"]
    # top-N inference draws nothing: the seed changes neither the probabilities nor the regions read,
    # and they are those of the model's deterministic pass
    assert runs["topk"]["sampling"] == "topk"
    assert runs["topk"]["p_positive"] == runs["topk_other"]["p_positive"] and geo["topk"] == geo["topk_other"]
    assert geo["topk"] != geo["default"] and runs["topk"]["draw_spread"] == 0.0
    net, _ = load_trained_model(model, torch.device("cpu"))
    pixels = np.asarray(Image.open(inputs / "a.png").convert("RGB"))
    with torch.no_grad():
        expected = torch.softmax(net.eval()([InMemoryImage(pixels)], sampling="topk").logits, dim=1)[0, 1]
    assert runs["topk"]["p_positive"] == pytest.approx(float(expected), abs=1e-6)


def test_draws_average_the_probabilities_and_the_run_records_how_many(tmp_path, inputs):
    model = save_model(tmp_path / "m.pt", "zoomin", test_draws=4)  # a run evaluated with 4 draws
    rows = {
        name: predict(model, [inputs / "a.png"], tmp_path / name, settings, device="cpu")[0]
        for name, settings in {"run": PredictSettings(), "four": PredictSettings(draws=4), "one": PredictSettings(draws=1)}.items()
    }
    assert rows["run"]["draws"] == 4 and rows["run"]["p_positive"] == rows["four"]["p_positive"]
    assert rows["one"]["draws"] == 1 and rows["one"]["p_positive"] != rows["run"]["p_positive"]
    assert rows["one"]["draw_spread"] == "" and rows["run"]["draw_spread"] > 0
    written = read_csv(tmp_path / "run" / "predictions.csv")[0]
    assert written["draws"] == "4" and float(written["draw_spread"]) == pytest.approx(rows["run"]["draw_spread"])
    # a model file from before test_draws existed is predicted with one draw, as it was evaluated
    old = predict(save_model(tmp_path / "old.pt", "zoomin"), [inputs / "a.png"], tmp_path / "old", device="cpu")[0]
    assert old["draws"] == 1 and old["p_positive"] == rows["one"]["p_positive"]


# ---------------------------------------------------------------------------- same as evaluation
@pytest.mark.slow
def test_predict_gives_the_probabilities_evaluation_recorded(tmp_path):
    """Evaluation scores each test image alone with a generator seeded from the run's evaluation stream,
    averaging the run's ``test_draws`` (3 here); predict on the same image files, with the run's seed,
    sampling and draws (its defaults), gives the same probabilities, to float32 precision (the CSV
    keeps 9 significant digits). The metrics also carry the spread over the draws and the cost over
    several test images."""
    experiment = load(TINY_CONFIG)
    spec = experiment.run("colon", "zoomin_lenet", "r0f0")
    spec = replace(spec, training=spec.training.replace(test_draws=3))
    constructed = generate("colon", tmp_path / "colon", 0, progress=False, n_images=12, image_size=128)
    views = build_view_cache(tmp_path / "colon", experiment.cache_scales("colon", slides=False), tmp_path / "views.h5")
    torch.manual_seed(1)
    model = spec.model.build(len(constructed.classes))
    metadata = {
        "dataset": "colon", "method": spec.method, "model_type": spec.model.type,
        "model_params": spec.model.params.to_dict(), "classes": list(constructed.classes), "seed": spec.seed,
        "run": spec.run, "sampling_at_test": spec.training.sampling_at_test, "mpp": None, "test_draws": 3,
    }
    torch.save({"state_dict": model.state_dict(), "metadata": metadata}, tmp_path / "model.pt")
    metrics = evaluate(spec, views, tmp_path / "model.pt", tmp_path / "metrics.json")
    assert metrics["test_draws"] == 3 and len(metrics["draw_spread"]) == metrics["n_test"]
    assert metrics["draw_spread_mean"] == pytest.approx(np.mean(metrics["draw_spread"])) and metrics["draw_spread_mean"] > 0
    assert metrics["cost_images"] == min(spec.measure.images, metrics["n_test"])
    assert len(metrics["cost_image_ids"]) == metrics["cost_images"]
    assert set(metrics["cost_image_ids"]) <= set(metrics["image_ids"])
    assert metrics["gflops"] == pytest.approx(2 * metrics["gmacs"]) and metrics["gmacs"] > 0
    assert metrics["peak_memory_mb"] == max(row["peak_memory_mb"] for row in metrics["cost_per_image"])

    files = [tmp_path / "colon" / constructed.record(i).path for i in metrics["image_ids"]]
    rows = predict(tmp_path / "model.pt", files, tmp_path / "out", device="cpu")
    assert [r["image_id"] for r in rows] == metrics["image_ids"]
    for row, expected in zip(rows, metrics["probabilities"]):
        assert [row[f"p_{c}"] for c in constructed.classes] == pytest.approx(expected, abs=1e-7)
    csv_rows = read_csv(tmp_path / "out" / "predictions.csv")
    got = [[float(r[f"p_{c}"]) for c in constructed.classes] for r in csv_rows]
    assert np.allclose(got, metrics["probabilities"], atol=1e-7, rtol=0)
    assert [constructed.classes.index(r["predicted"]) for r in rows] == metrics["predictions"]
    # and the agreement is not a coincidence: another seed draws other sub-tiles
    other = predict(tmp_path / "model.pt", files[:3], tmp_path / "other", PredictSettings(seed=spec.seed + 1), device="cpu")
    assert any(o["p_positive"] != r["p_positive"] for o, r in zip(other, rows))


# ---------------------------------------------------------------------------- refused
def cli(capsys, *args) -> tuple[int, str]:
    capsys.readouterr()
    status = main(["predict", *map(str, args)])
    return status, capsys.readouterr().err


@pytest.mark.parametrize("case", ["text file", "training checkpoint", "unknown model type", "missing"])
def test_a_wrong_model_file_is_refused_naming_it(tmp_path, inputs, capsys, case):
    model = tmp_path / "model.pt"
    if case == "text file":
        model.write_text("not a model")
    elif case == "training checkpoint":
        torch.save({"identity": {}, "model": {}, "optimizer": {}}, model)
    elif case == "unknown model type":
        save_model(model, "zoomin", model_type="vision_transformer")
    out = tmp_path / "out"
    status, err = cli(capsys, model, inputs / "a.png", "--out", out, "--device", "cpu")
    assert status == 1
    assert str(model) in err and err.count("\n") == 1
    expected = {"text file": "not a readable PyTorch checkpoint", "training checkpoint": "is not a zoomin model file but a training checkpoint",
                "unknown model type": "vision_transformer", "missing": "does not exist"}[case]
    assert expected in err
    assert not out.exists() and siblings(out) == (["model.pt"] if case != "missing" else [])


def test_an_unreadable_slide_is_refused_before_anything_runs(tmp_path, inputs, capsys):
    bad = make_truncated_tiff(tmp_path / "in" / "broken.tif", size=1024)
    out = tmp_path / "out"
    status, err = cli(capsys, save_model(tmp_path / "m.pt", "zoomin"), inputs / "a.png", bad, "--out", out, "--device", "cpu")
    assert status == 1 and str(bad) in err
    assert not out.exists() and siblings(out) == ["in", "m.pt"]


def test_an_image_that_fails_to_decode_midway_leaves_no_output(tmp_path, inputs):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.open(inputs / "a.png").save(folder / "1_good.png")
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (300, 300, 3), dtype=np.uint8)).save(folder / "2_bad.png")
    corrupt(folder / "2_bad.png")  # the header reads, the pixels do not
    out = tmp_path / "out"
    with pytest.raises(InputFileError, match="2_bad.png"):
        predict(save_model(tmp_path / "m.pt", "zoomin"), [folder], out, device="cpu")
    assert not out.exists() and siblings(out) == ["in", "m.pt"]


@pytest.mark.parametrize("contents", [[], ["readme.txt"]])
def test_a_folder_without_images_is_refused(tmp_path, capsys, contents):
    folder = tmp_path / "empty"
    folder.mkdir()
    for name in contents:
        (folder / name).write_text("x")
    out = tmp_path / "out"
    status, err = cli(capsys, save_model(tmp_path / "m.pt", "zoomin"), folder, "--out", out, "--device", "cpu")
    assert status == 1 and str(folder) in err and "no image or slide" in err
    assert not out.exists()


def test_a_file_that_is_no_image_is_refused(tmp_path, inputs, capsys):
    status, err = cli(capsys, save_model(tmp_path / "m.pt", "zoomin"), inputs / "notes.txt", "--out", tmp_path / "o")
    assert status == 1 and "notes.txt" in err and "not an image or slide" in err


def test_a_slide_at_another_pixel_size_is_refused_unless_asked(tmp_path, inputs):
    model = save_model(tmp_path / "m.pt", "zoomin", mpp=2 * MPP)
    with pytest.raises(InputFileError, match=r"slide.tif: is scanned at 0.25 µm/px .* 0.5 µm/px"):
        predict(model, [inputs / "a.png", inputs / "slide.tif"], tmp_path / "out", device="cpu")
    assert not (tmp_path / "out").exists()
    rows = predict(model, [inputs / "slide.tif"], tmp_path / "out", PredictSettings(ignore_mpp=True), device="cpu")
    assert rows[0]["kind"] == "slide"
    assert predict(save_model(tmp_path / "near.pt", "zoomin", mpp=1.1 * MPP), [inputs / "slide.tif"], tmp_path / "near", device="cpu")


def test_a_model_reading_whole_slides_too_large_or_other_channels_is_refused(tmp_path, inputs, monkeypatch):
    monkeypatch.setattr(expectations_module, "MAX_VIEW_PIXELS", 200 * 200)
    with pytest.raises(InputFileError, match=r"slide.tif: .* reads the whole image at scale 0.25, a 256x256 view"):
        predict(save_model(tmp_path / "cnn.pt", "cnn"), [inputs / "slide.tif"], tmp_path / "out", device="cpu")
    monkeypatch.setattr(expectations_module, "expected_channels", lambda model: 4)
    with pytest.raises(InputFileError, match=r"a.png: has 3 channels but the zoomin model reads 4"):
        predict(save_model(tmp_path / "z.pt", "zoomin"), [inputs / "a.png"], tmp_path / "out", device="cpu")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------- the config block
@pytest.mark.parametrize(
    ("block", "key"),
    [
        ({"datasets": {"nowhere": {"inputs": ["x.png"]}}}, "predict.datasets.nowhere"),
        ({"datasets": {"fmow": {"inputs": ["x.png"], "methods": ["ats"]}}}, "predict.datasets.fmow.methods"),
        ({"datasets": {"colon": {"inputs": ["x.png"], "runs": ["s0"]}}}, "predict.datasets.colon.runs"),
        ({"datasets": {"colon": {"inputs": []}}}, "predict.datasets.colon.inputs"),
        ({"datasets": {"colon": {}}}, "predict.datasets.colon"),
        ({"sampling": "best"}, "predict.sampling"),
        ({"thumbnail": 10}, "predict.thumbnail"),
        ({"colour": "red"}, "predict"),
    ],
)
def test_bad_predict_blocks_are_refused_naming_the_key(block, key):
    import yaml

    from zoomin.config.load import prepare
    from zoomin.errors import ConfigError

    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["predict"] = block
    with pytest.raises(ConfigError) as info:
        prepare(config)
    assert f"'{key}'" in str(info.value)


def test_predict_block_defaults_to_every_method_and_the_first_run():
    import yaml

    from zoomin.config.load import prepare

    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["predict"] = {"seed": 5, "datasets": {"colon": {"inputs": ["a.png", "folder"]}}}
    experiment = prepare(config)
    assert experiment.predict == PredictSettings(seed=5)
    assert [(t.dataset, t.method, t.run, t.inputs) for t in experiment.predictions] == [
        ("colon", "cnn_lowres", "r0f0", ("a.png", "folder")),
        ("colon", "ats", "r0f0", ("a.png", "folder")),
        ("colon", "zoomin_lenet", "r0f0", ("a.png", "folder")),
    ]
