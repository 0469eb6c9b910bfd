"""A tiny separable problem the baselines' tests train on: noise with or without one bright square."""

from __future__ import annotations

import numpy as np
import torch

from zoomin.image_access import InMemoryImage
from zoomin.training import losses


def bright_square_images(n: int, seed: int, side: int = 64, square: int = 10) -> tuple[list[InMemoryImage], torch.Tensor]:
    """``n`` dark noise images; the odd ones (label 1) hold a white ``square`` x ``square`` somewhere."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for i in range(n):
        pixels = rng.integers(0, 120, (side, side, 3)).astype(np.uint8)
        if i % 2:
            top, left = rng.integers(0, side - square, 2)
            pixels[top : top + square, left : left + square] = 255
        images.append(InMemoryImage(pixels))
        labels.append(i % 2)
    return images, torch.tensor(labels)


def train_steps(model: torch.nn.Module, images, labels, steps: int, batch: int = 8, lr: float = 1e-3) -> None:
    """``steps`` Adam steps of the training loss (CE + the model's own terms), as zoomin.training.loop does."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
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
    model.eval()
    with torch.no_grad():
        predictions = model(images).logits.argmax(dim=1)
    return float((predictions == labels).float().mean())
