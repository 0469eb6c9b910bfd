"""Running a trained model over images: class probabilities, predicted classes and accuracy.

The Monte Carlo draws come from a generator on the model's device seeded with the run's evaluation
stream (:func:`zoomin.config.runs.stream_seed`), so every result is repeatable. Two ways of spending it:

* :func:`image_prediction` / :func:`score_images` -- each image alone (batch 1) with a fresh
  generator, ``draws`` (M) forward passes one after the other on it, the class probabilities
  averaged over them (test-time Monte Carlo averaging; ``training.test_draws``). Draw 0 is the
  single draw of ``M = 1``; draw ``m`` continues the generator where draw ``m - 1`` left it, so the M
  draws are repeatable and distinct. A model that takes nothing from the generator in its first
  pass (a CNN, top-N inference, any deterministic model) would give the same output M times: it
  runs once. An image's probabilities then depend only on the model, the image, the seed, the
  sampling mode and M, not on which images were scored with it: this is what the test evaluation
  (:mod:`zoomin.training.evaluate`) and ``zoomin predict`` use, so both give the same probabilities
  for the same image and seed.
* :func:`predict_logits` / :func:`accuracy` -- batches of :data:`BATCH_SIZE` sharing one generator
  (faster): the validation accuracy of each training epoch, which only ranks epochs.

Both run the model in eval mode without autograd, which is the bounded-memory (streamed) path of
models that have one (:mod:`zoomin.models.bounded_memory`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

from zoomin.config.runs import Stream, stream_seed
from zoomin.image_access import ImageAccess
from zoomin.models.adaptive_draws import image_draws
from zoomin.models.output import ModelOutput

BATCH_SIZE = 8  # images per forward pass at inference (memory is measured separately, at batch 1)


def stream_generator(run_seed: int, stream: Stream, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator on ``device`` seeded with ``stream`` of the run seeded ``run_seed``."""
    return torch.Generator(device=device).manual_seed(stream_seed(run_seed, stream))


@dataclass
class ImagePrediction:
    """One image's prediction over its test-time draws.

    ``probabilities``: ``(classes,)``, the mean over the draws (CPU). ``draw_probabilities``:
    ``(draws run, classes)``, each draw's. ``first``: the model's output of draw 0 (its attention is
    what ``zoomin predict`` draws). ``sampled``: whether the model took random numbers at all (if not,
    it ran once: every draw would be the same)."""

    probabilities: torch.Tensor
    draw_probabilities: torch.Tensor
    first: ModelOutput
    sampled: bool

    @property
    def predicted(self) -> int:
        return int(self.probabilities.argmax())

    @property
    def spread(self) -> float | None:
        """The standard deviation (n - 1) over the draws of the predicted class's probability: 0 for a
        model that draws nothing, ``None`` when a sampling model ran only one draw (unknown)."""
        if not self.sampled:
            return 0.0
        if len(self.draw_probabilities) < 2:
            return None
        return float(self.draw_probabilities[:, self.predicted].double().std(correction=1))

    @property
    def sample_size(self) -> int | None:
        """The number of draws N the image's stage 1 took (the same in every draw; the image's own
        with N from the attention); ``None`` for a model without counted draws."""
        return (image_draws(self.first) or [None])[0]


def _generator_state(generator: torch.Generator) -> torch.Tensor:
    return generator.get_state().clone()


@torch.no_grad()
def image_prediction(
    model: torch.nn.Module, image: ImageAccess, device: torch.device, seed: int, sampling: str, draws: int = 1
) -> ImagePrediction:
    """``draws`` forward passes on one image from the evaluation stream of the run seeded ``seed``
    (module docstring); one pass if the model draws nothing."""
    if draws < 1:
        raise ValueError(f"draws must be at least 1, got {draws}")
    model.eval()
    generator = stream_generator(seed, Stream.EVALUATION, device)
    before = _generator_state(generator)
    first = model([image], generator=generator, sampling=sampling)
    rows = [torch.softmax(first.logits.float(), dim=1)[0].cpu()]
    sampled = not torch.equal(before, _generator_state(generator))
    for _ in range(1, draws if sampled else 1):
        logits = model([image], generator=generator, sampling=sampling).logits
        rows.append(torch.softmax(logits.float(), dim=1)[0].cpu())
    each = torch.stack(rows)
    return ImagePrediction(each.mean(dim=0), each, first, sampled)


def image_output(
    model: torch.nn.Module, image: ImageAccess, device: torch.device, seed: int, sampling: str
) -> ModelOutput:
    """The model's output for one image (a single draw: draw 0 of :func:`image_prediction`)."""
    return image_prediction(model, image, device, seed, sampling).first


@dataclass
class ImageScores:
    """What the test evaluation keeps of each image's :class:`ImagePrediction`: not the outputs
    (attention), only the class probabilities ``(n, classes)`` on the CPU, the draw spreads and
    the stage-1 N (:attr:`ImagePrediction.spread`, :attr:`ImagePrediction.sample_size`)."""

    probabilities: torch.Tensor
    spreads: list[float | None]
    sample_sizes: list[int | None]


def score_images(
    model: torch.nn.Module,
    images: Iterable[ImageAccess],
    device: torch.device,
    seed: int,
    sampling: str,
    draws: int = 1,
) -> ImageScores:
    """Each image scored alone, the mean of ``draws`` draws (:func:`image_prediction`)."""
    rows, spreads, sample_sizes = [], [], []
    for image in images:
        prediction = image_prediction(model, image, device, seed, sampling, draws)
        rows.append(prediction.probabilities[None])
        spreads.append(prediction.spread)
        sample_sizes.append(prediction.sample_size)
    return ImageScores(torch.cat(rows) if rows else torch.zeros((0, 0)), spreads, sample_sizes)


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
