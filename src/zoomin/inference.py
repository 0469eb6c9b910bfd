"""Running a trained model over a subset: predicted classes and accuracy.

Used by training (validation accuracy each epoch), evaluation (test accuracy) and figures. The
Monte Carlo draws come from a generator on the model's device seeded by the run's seed plus
:data:`zoomin.runs.EVALUATION_DRAWS`, so evaluation is repeatable.
"""

from __future__ import annotations

from typing import Any

import torch

from zoomin.runs import EVALUATION_DRAWS

BATCH_SIZE = 8  # images per forward pass at inference (memory is measured separately, at batch 1)


@torch.no_grad()
def predict_logits(model: torch.nn.Module, subset: Any, device: torch.device, seed: int, sampling: str) -> torch.Tensor:
    """Logits ``(len(subset), classes)`` on the CPU."""
    model.eval()
    generator = torch.Generator(device=device).manual_seed(seed + EVALUATION_DRAWS)
    logits = []
    for start in range(0, len(subset), BATCH_SIZE):
        images = [subset.image(i) for i in range(start, min(start + BATCH_SIZE, len(subset)))]
        logits.append(model(images, generator=generator, sampling=sampling).logits.float().cpu())
    return torch.cat(logits) if logits else torch.zeros((0, 0))


def predict(model: torch.nn.Module, subset: Any, device: torch.device, seed: int, sampling: str) -> list[int]:
    """Predicted class per image of ``subset``."""
    if len(subset) == 0:
        return []
    return predict_logits(model, subset, device, seed, sampling).argmax(1).tolist()


def accuracy(model: torch.nn.Module, subset: Any, device: torch.device, seed: int, sampling: str) -> float:
    """Fraction of ``subset`` predicted right (0 for an empty subset)."""
    predictions = predict(model, subset, device, seed, sampling)
    return sum(int(p == subset.label(i)) for i, p in enumerate(predictions)) / max(len(subset), 1)
