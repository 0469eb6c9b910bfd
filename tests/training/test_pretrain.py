"""Appendix-L pre-training: patch labels from the mask, the balanced loss, and that pre-training
teaches a, b and f to tell annotated tiles, positions and sub-tiles from the rest."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from zoomin.image_access import InMemoryImage
from zoomin.models import build_model
from zoomin.training.pretrain import balanced_bce, cell_labels, image_loss, pretrain_tile_classifiers

pytestmark = pytest.mark.usefixtures("single_thread")

SIZE, OBJECT = 64, 8
PARAMS = {"tile": 16, "subtile": 4, "s1": 0.25, "s2": 0.5, "n": 4}


def test_a_cell_is_labelled_when_any_annotated_pixel_falls_in_it():
    mask = torch.zeros(64, 64)
    mask[17, 40] = 1.0  # tile (1, 2) of 16 px tiles
    labels = cell_labels(mask, (64, 64), 0, 0, 4, 4, 16)
    assert labels.nonzero().tolist() == [[1, 2]]
    # a window of one tile, cells of 4 px: only the cell holding the pixel
    window = cell_labels(mask, (64, 64), 16, 32, 4, 4, 4)
    assert window.nonzero().tolist() == [[0, 2]]
    # the same mask stored at 1/4, cells of 2 px: the mask pixel covering it labels the 4 cells inside it
    coarse = torch.nn.functional.avg_pool2d(mask[None, None], 4)[0, 0]
    window = cell_labels(coarse, (64, 64), 16, 32, 8, 8, 2)
    assert window.nonzero().tolist() == [[0, 4], [0, 5], [1, 4], [1, 5]]
    # cells past the image's edge hold nothing
    assert cell_labels(mask, (64, 64), 48, 48, 2, 2, 16).sum() == 0


def test_the_loss_weighs_positives_and_negatives_alike():
    logits = torch.tensor([2.0, -1.0, 0.5, 0.0])
    labels = torch.tensor([1.0, 0.0, 0.0, 0.0])
    each = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    torch.testing.assert_close(balanced_bce(logits, labels), 0.5 * (each[0] + each[1:].mean()))
    torch.testing.assert_close(balanced_bce(logits[1:], labels[1:]), each[1:].mean())


def scene(seed: int) -> tuple[InMemoryImage, torch.Tensor]:
    """Grey noise with one half-white, half-black square (the noise's mean colour, so that an untrained net has no
    reason to single it out) at a random place, and the square's mask."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(90, 140, (SIZE, SIZE, 3), dtype=np.uint8)
    y, x = rng.integers(0, SIZE - OBJECT, 2)
    pixels[y : y + OBJECT, x : x + OBJECT // 2] = 215
    pixels[y : y + OBJECT, x + OBJECT // 2 : x + OBJECT] = 15
    mask = np.zeros((SIZE, SIZE), dtype=np.float32)
    mask[y : y + OBJECT, x : x + OBJECT] = 1.0
    return InMemoryImage(pixels), torch.from_numpy(mask)


@dataclass
class MaskCache:
    masks: dict[str, np.ndarray]
    scales: tuple[float, ...] = (1.0,)

    def mask_view(self, image_id: str, scale: float) -> np.ndarray | None:
        return self.masks.get(image_id)


class AnnotatedImages:
    """What pre-training uses of a training subset: images, ids and their cached masks."""

    def __init__(self, scenes):
        self.images = [image for image, _ in scenes]
        self.cache = MaskCache({str(i): (mask.numpy() * 255).astype(np.uint8) for i, (_, mask) in enumerate(scenes)})

    def __len__(self) -> int:
        return len(self.images)

    def image(self, i: int):
        return self.images[i]

    def image_id(self, i: int) -> str:
        return str(i)


def ranking(model, scenes) -> tuple[float, float, float]:
    """How often a's tile logit, b's position logit and f's head rank an annotated patch above an
    unannotated one (AUC over the scenes' tiles, positions of annotated tiles, sub-tiles)."""
    from sklearn.metrics import roc_auc_score

    tiles, positions = ([], []), ([], [])
    with torch.no_grad():
        for image, mask in scenes:
            labels = cell_labels(mask, image.size, 0, 0, 4, 4, 16)
            tiles[0].append(labels.reshape(-1))
            tiles[1].append(model.tile_logits([image])[0].reshape(-1))
            for t in labels.reshape(-1).nonzero()[:, 0].tolist():
                row, col = divmod(t, 4)
                view = image.region_view(row * 16, col * 16, 16, 0.5)
                positions[0].append(cell_labels(mask, image.size, row * 16, col * 16, 8, 8, 2).reshape(-1))
                positions[1].append(model.subtile_attention(view[None])[0].reshape(-1))
    auc = [roc_auc_score(torch.cat(y).numpy(), torch.cat(s).numpy()) for y, s in (tiles, positions)]
    return auc[0], auc[1]


def test_pretraining_teaches_the_attention_nets_where_the_annotated_object_is():
    torch.manual_seed(0)
    model = build_model("zoomin", 2, **PARAMS)
    train, held_out = [scene(i) for i in range(12)], [scene(100 + i) for i in range(8)]
    before = ranking(model, held_out)
    losses = pretrain_tile_classifiers(model, AnnotatedImages(train), 15, 1e-2, 4, torch.Generator().manual_seed(0))
    after = ranking(model, held_out)
    assert losses[-1] < 0.8 * losses[0], losses
    assert after[0] > 0.95 and after[0] > before[0] + 0.2, (before, after)
    assert after[1] > 0.95 and after[1] > before[1] + 0.2, (before, after)


def test_the_feature_net_learns_through_its_own_head():
    torch.manual_seed(0)
    model = build_model("zoomin", 2, **PARAMS)
    image, mask = scene(3)
    head = torch.nn.Linear(model.features.out_dim, 1)
    loss = image_loss(model, head, image, mask, torch.Generator().manual_seed(0))
    loss.backward()
    for name, part in (("a", model.tile_attention), ("b", model.subtile_attention), ("f", model.features),
                       ("head", head)):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters()), name
    assert model.classifier.weight.grad is None  # g is not pre-trained
