"""The training budget in history.csv: cumulative optimiser steps, images seen and training MACs.

The model here is one linear layer on a fixed 3x4x4 view, so the MACs of a training step are known
in closed form: the forward product is 48 x 2 per image and the backward computes only the
weight's gradient (the input needs none), another 48 x 2 per image; cross-entropy and the bias's
gradient are element-wise, not counted. 192 MACs per image, whatever the batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pytest
import torch

from tests.workflow.helpers import TINY_CONFIG
from zoomin.config import load as zconfig
from zoomin.image_access import InMemoryImage
from zoomin.models.output import ModelOutput
from zoomin.training import losses
from zoomin.training.loop import Trainer, train_epoch

pytestmark = pytest.mark.usefixtures("single_thread")

FEATURES, CLASSES = 3 * 4 * 4, 2
MACS_PER_IMAGE = 2 * FEATURES * CLASSES  # forward + the weight's gradient


class LinearOnAView(torch.nn.Module):
    """Logits from the image's 4x4 view (an 8x8 image at scale 0.5), through one linear layer."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(FEATURES, CLASSES)

    def forward(self, images, generator=None):
        views = torch.stack([image.view(0.5) for image in images]).flatten(1)
        logits = self.linear(views)
        return ModelOutput(logits=logits, entropy=logits.new_zeros(0))

    def auxiliary_loss(self, output, labels):
        return None


@dataclass
class Images:
    """A training subset of ``n`` random 8x8 images; labels alternate."""

    n: int

    def __len__(self):
        return self.n

    def image(self, i):
        return InMemoryImage(np.random.default_rng(i).integers(0, 256, (8, 8, 3), dtype=np.uint8))

    def label(self, i):
        return i % 2


@dataclass
class Data:
    train: Images
    val: Images


def trainer(n_train: int, batch_size: int) -> Trainer:
    spec = zconfig.load(TINY_CONFIG).run("colon", "zoomin_lenet", "r0f0")
    spec = replace(spec, training=spec.training.replace(batch_size=batch_size, epochs=3))
    torch.manual_seed(0)
    model = LinearOnAView()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Trainer(
        spec=spec,
        data=Data(Images(n_train), Images(0)),  # no validation set: no validation pass
        device=torch.device("cpu"),
        model=model,
        optimizer=optimizer,
        scheduler=torch.optim.lr_scheduler.StepLR(optimizer, step_size=10),
        shuffle_rng=torch.Generator().manual_seed(0),
        sample_rng=torch.Generator().manual_seed(1),
        loss_config=losses.LossConfig(),
        contrastive_start=None,
    )


def test_history_counts_steps_images_and_training_macs_cumulatively():
    run = trainer(n_train=7, batch_size=3)  # batches of 3, 3 and 1: three steps an epoch
    state = {"history": []}
    for epoch in (1, 2, 3):
        state["history"].append(train_epoch(run, epoch, state))
    history = state["history"]
    assert [row["steps"] for row in history] == [3, 6, 9]
    assert [row["images_seen"] for row in history] == [7, 14, 21]
    per_epoch = MACS_PER_IMAGE * 7 / 1e9
    assert [row["train_gmacs"] for row in history] == pytest.approx([per_epoch, 2 * per_epoch, 3 * per_epoch])


def test_the_count_covers_the_backward_pass_and_is_per_image():
    # A forward-only count would give half; a per-batch count would scale with the batch size.
    for batch_size in (1, 4):
        row = train_epoch(trainer(n_train=4, batch_size=batch_size), 1, {"history": []})
        assert row["train_gmacs"] == pytest.approx(MACS_PER_IMAGE * 4 / 1e9)


def test_a_history_from_before_the_budget_columns_continues_as_unknown():
    run = trainer(n_train=4, batch_size=2)
    old_row = {"epoch": 1, "train_loss": 0.7}  # a checkpoint written before the columns existed
    row = train_epoch(run, 2, {"history": [old_row]})
    assert math.isnan(row["steps"]) and math.isnan(row["train_gmacs"])
