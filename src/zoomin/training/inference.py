"""Running a trained model over images: class probabilities, predicted classes and accuracy.

The Monte Carlo draws come from a generator on the model's device seeded by the run's seed plus
its evaluation stream (:func:`zoomin.config.runs.stream_seed`), so every result is repeatable. Two ways of spending it:

* :func:`image_output` / :func:`image_probabilities` -- each image alone (batch 1) with a fresh
  generator. An image's probabilities then depend only on the model, the image, the seed and the
  sampling mode, not on which images were scored with it: this is what the test evaluation
  (:mod:`zoomin.training.evaluate`) and ``zoomin predict`` use, so both give the same probabilities for
  the same image and seed.
* :func:`predict_logits` / :func:`accuracy` -- batches of :data:`BATCH_SIZE` sharing one generator
  (faster): the validation accuracy of each training epoch, which only ranks epochs.

Both run the model in eval mode without autograd, which is the bounded-memory (streamed) path of
models that have one (:mod:`zoomin.models.bounded_memory`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from zoomin.config.runs import Stream, stream_seed
from zoomin.image_access import ImageAccess
from zoomin.models.output import ModelOutput

BATCH_SIZE = 8  # images per forward pass at inference (memory is measured separately, at batch 1)


def stream_generator(run_seed: int, stream: Stream, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator on ``device`` seeded with ``stream`` of the run seeded ``run_seed``."""
    return torch.Generator(device=device).manual_seed(stream_seed(run_seed, stream))


@torch.no_grad()
def image_output(
    model: torch.nn.Module, image: ImageAccess, device: torch.device, seed: int, sampling: str
) -> ModelOutput:
    """The model's output for one image, its draws from the evaluation stream of the run seeded ``seed``."""
    model.eval()
    generator = stream_generator(seed, Stream.EVALUATION, device)
    return model([image], generator=generator, sampling=sampling)


def image_probabilities(
    model: torch.nn.Module, images: Iterable[ImageAccess], device: torch.device, seed: int, sampling: str
) -> torch.Tensor:
    """Class probabilities ``(n, classes)`` on the CPU, each image scored alone (:func:`image_output`)."""
    rows = [
        torch.softmax(image_output(model, image, device, seed, sampling).logits.float(), dim=1).cpu()
        for image in images
    ]
    return torch.cat(rows) if rows else torch.zeros((0, 0))


@torch.no_grad()
def predict_logits(model: torch.nn.Module, subset: Any, device: torch.device, seed: int, sampling: str) -> torch.Tensor:
    """Logits ``(len(subset), classes)`` on the CPU."""
    model.eval()
    generator = stream_generator(seed, Stream.EVALUATION, device)
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
