"""What the training loop records per epoch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zoomin.image_access import CountingImage, InMemoryImage
from zoomin.models import build_model
from zoomin.training.loop import tiles_opened

pytestmark = pytest.mark.usefixtures("single_thread")


def test_training_records_the_tiles_opened_and_the_values_read():
    torch.manual_seed(0)
    model = build_model("zoomin", 2, tile=16, subtile=5, s1=0.25, s2=0.5, n=3)
    rng = np.random.default_rng(0)
    images = [CountingImage(InMemoryImage(rng.integers(0, 256, (64, 48, 3), dtype=np.uint8))) for _ in range(2)]
    out = model(images, generator=torch.Generator().manual_seed(1))
    opened = tiles_opened(out)
    assert opened == [int((a.counts > 0).sum()) for a in out.attention]
    assert all(1 <= k <= 3 for k in opened)
    for image, tiles in zip(images, opened):
        # stage-1 view (16x12 px) + one 8x8 stage-2 view per tile opened + the 5x5 sub-tiles read
        sub_tiles = len(out.attention[images.index(image)].sampled.centres)
        assert image.values == 3 * (16 * 12 + tiles * 8 * 8 + sub_tiles * 5 * 5)
    ats = build_model("ats", 2, scale=0.25, patch=5, n=3)
    assert tiles_opened(ats(images, generator=torch.Generator().manual_seed(1))) == []
