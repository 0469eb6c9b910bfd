"""Tiny learning problems the models' tests train on, and the training loop they share.

* :func:`checkerboard_images` -- noise with or without a small checkerboard of 2 x 2 px blocks
  added to it, aligned to the 4 px grid: the cue has zero mean over every aligned 4 x 4 block, so
  the box-filtered view at scale 1/4 is EXACTLY the view of the same noise without it (no model
  can find it there), while at scale 1/2 and above it is plain to see. A model that learns it must
  read the image above 1/4 scale where the object is.
* :func:`one_instance_bags` -- bags of instances (grid cells) in which only ONE instance of a
  positive bag carries the cue (a 1 px checkerboard on the noise): a multiple-instance learner
  must find that instance; one that picks instances at random cannot.
* :func:`train_steps` / :func:`accuracy` -- Adam on the training loss (CE plus the model's own
  terms, zoomin.training.losses) and held-out accuracy, as zoomin.training.loop does.
"""

from __future__ import annotations

import numpy as np
import torch

from zoomin.image_access import InMemoryImage
from zoomin.training import losses

BLIND_SCALE = 0.25  # the scale at which checkerboard_images' cue vanishes exactly


def checkerboard(side: int, block: int, amplitude: int) -> np.ndarray:
    """``side x side`` of +-``amplitude`` in ``block`` px squares (zero mean over 2 x 2 blocks)."""
    yy, xx = np.indices((side, side))
    return ((yy // block + xx // block) % 2 * 2 - 1) * amplitude


def checkerboard_images(
    n: int,
    seed: int,
    side: int = 64,
    cue: int = 24,
    amplitude: int = 40,
    within: tuple[int, int] | None = None,
    with_cue: bool = True,
) -> tuple[list[InMemoryImage], torch.Tensor]:
    """``n`` noise images (grey levels 100-155); the odd ones (label 1) hold a ``cue`` x ``cue``
    checkerboard of 2 x 2 px blocks of +-``amplitude`` added to the noise, its corner on the 4 px
    grid, anywhere (or with its corner in ``within`` = (first, last) px along both axes).
    ``with_cue=False`` gives the same noise without the cue (the same random numbers are drawn)."""
    rng = np.random.default_rng(seed)
    low, high = within if within is not None else (0, side - cue)
    board = checkerboard(cue, 2, amplitude)[:, :, None]
    images, labels = [], []
    for i in range(n):
        pixels = rng.integers(100, 156, (side, side, 3)).astype(np.int16)
        top, left = rng.integers(low // 4, high // 4 + 1, 2) * 4
        if i % 2 and with_cue:
            pixels[top : top + cue, left : left + cue] += board
        images.append(InMemoryImage(pixels.astype(np.uint8)))
        labels.append(i % 2)
    return images, torch.tensor(labels)


def blurred(images: list[InMemoryImage], scale: float = BLIND_SCALE) -> list[InMemoryImage]:
    """The images as a model that never looks above ``scale`` sees them: each one's view at ``scale``
    blown back up to full size (pixel repetition). For :func:`checkerboard_images` at 1/4 this is
    the image without its cue."""
    factor = round(1 / scale)
    return [
        InMemoryImage(np.repeat(np.repeat(image.view_array(scale), factor, axis=0), factor, axis=1))
        for image in images
    ]


def one_instance_bags(
    n: int, seed: int, rows: int = 4, cols: int = 5, cell: int = 8, amplitude: int = 60
) -> tuple[list[InMemoryImage], torch.Tensor]:
    """``n`` images of ``rows x cols`` instances of ``cell`` px (grey noise 110-140); in the odd ones
    (label 1) ONE instance, at random, carries a 1 px checkerboard of +-``amplitude``."""
    rng = np.random.default_rng(seed)
    board = checkerboard(cell, 1, amplitude)[:, :, None]
    images, labels = [], []
    for i in range(n):
        pixels = rng.integers(110, 141, (rows * cell, cols * cell, 3)).astype(np.int16)
        if i % 2:
            row, col = rng.integers(0, rows), rng.integers(0, cols)
            pixels[row * cell : (row + 1) * cell, col * cell : (col + 1) * cell] += board
        images.append(InMemoryImage(pixels.astype(np.uint8)))
        labels.append(i % 2)
    return images, torch.tensor(labels)


def train_steps(model: torch.nn.Module, images, labels, steps: int, batch: int = 8, lr: float = 1e-3) -> None:
    """``steps`` Adam steps of the training loss (CE + the model's own terms), as zoomin.training.loop does."""
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        batch_index = torch.randint(0, len(images), (batch,), generator=generator).tolist()
        out = model([images[i] for i in batch_index], generator=generator)
        parts = losses.total_loss(out, labels[batch_index], losses.LossConfig(), model=model)
        optimizer.zero_grad()
        parts.total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()


def accuracy(model: torch.nn.Module, images, labels) -> float:
    """Held-out accuracy in eval mode; a sampling model draws from a generator seeded 0."""
    model.eval()
    with torch.no_grad():
        predictions = model(images, generator=torch.Generator().manual_seed(0)).logits.argmax(dim=1)
    return float((predictions == labels).float().mean())
