"""Fixtures of the reliability tests: a tiny synthetic colon dataset, its view cache, a reference run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.reliability_helpers import evaluate_args, train_args, zoomin


@pytest.fixture(scope="session")
def colon_views(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """views.h5 of 12 synthetic colon images 200x200 at scales 0.1 and 0.2 (the resume config's)."""
    root = tmp_path_factory.mktemp("colon")
    zoomin(
        "construct", "--source", "synthetic", "--kind", "colon", "--out", root / "constructed",
        "--seed", "0", "--param", "n_images=12", "--param", "image_size=200", cwd=root,
    )
    zoomin("build-views", "--constructed", root / "constructed", "--scales", "0.1", "0.2",
           "--out", root / "views.h5", "--no-progress", cwd=root)
    return root / "views.h5"


@pytest.fixture(scope="session")
def uninterrupted_run(colon_views: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One complete train + evaluate of the resume config (the reference for resume and determinism)."""
    out = tmp_path_factory.mktemp("uninterrupted")
    zoomin(*train_args(colon_views, out), cwd=out)
    zoomin(*evaluate_args(colon_views, out), cwd=out)
    return out
