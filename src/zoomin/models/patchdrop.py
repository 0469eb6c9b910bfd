"""PatchDrop (Uzkent & Ermon, CVPR 2020): a policy decides which cells of a grid the classifier sees.

The image is split into ``grid x grid`` cells (cell edges at ``round(i * H / grid)``). A small
policy CNN on the low-resolution view ``image.view(policy_scale)`` gives one keep probability
``p`` per cell, bounded to ``p' = alpha p + (1 - alpha)(1 - p)`` so that every cell keeps some
chance both ways. In training the actions are ``a ~ Bernoulli(p')`` (drawn with the generator); at
inference (eval mode) they are greedy, ``a = [p' >= 0.5]``. The classifier (the colon CNN's
8-layer ResNet, ``width`` channels) sees a zero canvas at ``classifier_scale`` into which only the
kept cells' pixels are pasted: dropped cells are never read, so the meters see what the method
reads. The reference masks the full-resolution image (``classifier_scale = 1``).

Training is REINFORCE with the self-critical baseline (:meth:`PatchDropNet.auxiliary_loss`): the
reward of actions ``a`` is ``1 - (|a|_1 / cells)^2`` when the classifier's prediction on the image
masked by ``a`` is right and ``penalty`` otherwise; the advantage is ``R(sampled) - R(greedy)``;
the policy loss is ``-advantage * sum log pi(sampled)``, averaged over the batch. The classifier's
cross-entropy on the sampled masked image is the main loss (``ModelOutput.logits``), so policy and
classifier train jointly from the first step (the reference trains them in three stages;
docs/methods.md says why one stage). ``policy_start`` holds the policy loss back for that many
training steps, counted by the module (a buffer, so a resumed run keeps counting).

Attention: ``stage1`` is ``p'`` over the grid, normalised; ``sampled`` are the kept cells (centres,
side of the larger cell side).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from zoomin.image_access import ImageAccess, scaled_length
from zoomin.models.base import Classifier
from zoomin.models.batching import run_grouped, to_module, views_on
from zoomin.models.cnn import SmallResNet
from zoomin.models.output import Attention, AttentionMap, ModelOutput, SampledRegions, check_sampling
from zoomin.models.params import PatchDropParams
from zoomin.models.standardise import Standardise


def grid_edges(length: int, grid: int) -> list[int]:
    """Pixel edges of ``grid`` cells along a side of ``length`` px (cells differ by at most 1 px)."""
    return [round(i * length / grid) for i in range(grid + 1)]


def square_reads(top: int, bottom: int, left: int, right: int) -> list[tuple[int, int, int]]:
    """Squares ``(top, left, side)`` that cover the rectangle exactly and never leave it.

    ``region_view`` reads squares; a cell of a non-square image is covered by squares of its
    shorter side, the last one along the longer side shifted back to end at the cell's edge."""
    side = min(bottom - top, right - left)
    if side <= 0:
        return []

    def starts(begin: int, end: int) -> list[int]:
        positions = list(range(begin, end - side + 1, side))
        if positions[-1] + side < end:
            positions.append(end - side)
        return positions

    return [(y, x, side) for y in starts(top, bottom) for x in starts(left, right)]


class PolicyNet(nn.Module):
    """Low-resolution view ``(B, 3, h, w)`` -> keep logits ``(B, grid, grid)``.

    Three 3x3 convolutions (strides 2, 2, 1; no normalisation layer, so a lone view of any size
    trains), average-pooled onto the grid; a 1x1 convolution shared by the cells plus one learnt
    bias per cell gives the logits. The head starts at zero: ``p = 1/2`` everywhere, so the
    samples keep each cell with probability 1/2 and the greedy policy keeps every cell. The
    reference's policy is a ResNet ending in a fully connected layer over globally pooled
    features; pooling onto the grid instead keeps where things are."""

    def __init__(self, grid: int, channels: int = 32):
        super().__init__()
        self.grid = grid
        self.body = nn.Sequential(
            Standardise(),
            nn.Conv2d(3, channels // 2, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels // 2, channels, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(),
        )
        self.head = nn.Conv2d(channels, 1, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.cell_bias = nn.Parameter(torch.zeros(grid, grid))

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        pooled = F.adaptive_avg_pool2d(self.body(views), self.grid)
        return self.head(pooled)[:, 0] + self.cell_bias


@dataclass
class PolicyStep:
    """What :meth:`PatchDropNet.auxiliary_loss` needs from a training forward pass."""

    sampled: torch.Tensor  # (B, cells) actions drawn from p', 0/1
    greedy: torch.Tensor  # (B, cells) greedy actions [p' >= 0.5]
    greedy_logits: torch.Tensor  # (B, K) classifier logits on the greedy masks (no gradient)
    log_prob: torch.Tensor  # (B,) sum over cells of log pi(sampled), live w.r.t. the policy


def rewards(logits: torch.Tensor, actions: torch.Tensor, labels: torch.Tensor, penalty: float) -> torch.Tensor:
    """``1 - (|a|_1 / cells)^2`` where the prediction is right, ``penalty`` where it is wrong; ``(B,)``."""
    kept = actions.sum(dim=1) / actions.shape[1]
    right = logits.argmax(dim=1) == labels.to(logits.device)
    return torch.where(right, 1.0 - kept**2, torch.full_like(kept, penalty))


def policy_loss(advantage: torch.Tensor, log_prob: torch.Tensor) -> torch.Tensor:
    """REINFORCE: ``-mean(advantage * log pi(a))``; the advantage is a constant (detached)."""
    return -(advantage.detach() * log_prob).mean()


class PatchDropNet(Classifier):
    """See the module docstring."""

    def __init__(self, num_classes: int, params: PatchDropParams):
        super().__init__()
        self.params = params
        self.grid = params.grid
        self.policy_scale = params.policy_scale
        self.classifier_scale = params.classifier_scale
        self.alpha = params.alpha
        self.penalty = params.penalty
        self.policy_start = params.policy_start
        self.policy = PolicyNet(params.grid)
        self.classifier = SmallResNet(num_classes, params.width)
        self.register_buffer("policy_steps", torch.zeros((), dtype=torch.long))

    def keep_probs(self, images: Sequence[ImageAccess]) -> torch.Tensor:
        """Bounded keep probabilities ``p'`` of every cell, ``(B, cells)``, live."""
        views = views_on(self, images, self.policy_scale)
        p = torch.sigmoid(torch.stack(run_grouped(self.policy, views)).reshape(len(images), -1))
        return self.alpha * p + (1.0 - self.alpha) * (1.0 - p)

    def forward(
        self,
        images: Sequence[ImageAccess],
        generator: torch.Generator | None = None,
        sampling: str = "sample",
    ) -> ModelOutput:
        """Training: the classifier on the sampled masks (and, without gradient, on the greedy ones
        for the baseline). Eval: the greedy masks only, whatever ``sampling`` says."""
        check_sampling(sampling)
        probs = self.keep_probs(images)
        greedy = (probs.detach() >= 0.5).to(probs.dtype)
        if not self.training:
            logits = self.classify(images, [greedy])[0]
            return ModelOutput(logits, logits.new_zeros(len(images)), self._attention(images, probs, greedy))
        sampled = torch.bernoulli(probs.detach(), generator=generator)
        pixels = self._read_cells(images, [sampled, greedy])
        logits = self._classify_canvases(images, sampled, pixels)
        with torch.no_grad():
            greedy_logits = self._classify_canvases(images, greedy, pixels)
        bounded = probs.clamp(1e-6, 1 - 1e-6)
        log_prob = (sampled * torch.log(bounded) + (1 - sampled) * torch.log(1 - bounded)).sum(dim=1)
        return ModelOutput(
            logits,
            logits.new_zeros(len(images)),
            self._attention(images, probs, sampled),
            extras=PolicyStep(sampled, greedy, greedy_logits, log_prob),
        )

    def auxiliary_loss(self, output: ModelOutput, labels: torch.Tensor) -> torch.Tensor | None:
        """The self-critical REINFORCE loss of the policy (zero for the first ``policy_start`` steps)."""
        step = output.extras
        if not isinstance(step, PolicyStep):
            return None
        self.policy_steps += 1
        if int(self.policy_steps) <= self.policy_start:
            return output.logits.new_zeros(())
        advantage = rewards(output.logits, step.sampled, labels, self.penalty) - rewards(
            step.greedy_logits, step.greedy, labels, self.penalty
        )
        return policy_loss(advantage, step.log_prob)

    # ------------------------------------------------------------------ masked images
    def classify(self, images: Sequence[ImageAccess], actions: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Classifier logits ``(B, K)`` for each set of actions ``(B, cells)``; cells read once."""
        pixels = self._read_cells(images, actions)
        return [self._classify_canvases(images, a, pixels) for a in actions]

    def _cell_box(self, image: ImageAccess, cell: int) -> tuple[int, int, int, int]:
        """``(top, bottom, left, right)`` of ``cell`` in full-resolution px."""
        rows, cols = grid_edges(image.size[0], self.grid), grid_edges(image.size[1], self.grid)
        r, c = divmod(cell, self.grid)
        return rows[r], rows[r + 1], cols[c], cols[c + 1]

    def _read_cells(
        self, images: Sequence[ImageAccess], actions: Sequence[torch.Tensor]
    ) -> list[dict[int, list[tuple[int, int, torch.Tensor]]]]:
        """Per image: kept cell -> its square pieces ``(top, left, pixels at classifier_scale)``.
        Only cells kept by at least one of ``actions`` are read."""
        kept = torch.stack([a.detach() for a in actions]).amax(dim=0).cpu()
        out = []
        for image, row in zip(images, kept):
            pieces = {}
            for cell in row.nonzero()[:, 0].tolist():
                top, bottom, left, right = self._cell_box(image, cell)
                pieces[cell] = [
                    (y, x, image.region_view(y, x, side, self.classifier_scale))
                    for y, x, side in square_reads(top, bottom, left, right)
                ]
            out.append(pieces)
        return out

    def _classify_canvases(
        self,
        images: Sequence[ImageAccess],
        actions: torch.Tensor,
        pixels: list[dict[int, list[tuple[int, int, torch.Tensor]]]],
    ) -> torch.Tensor:
        canvases = [
            self._canvas(image, row, pieces) for image, row, pieces in zip(images, actions.detach().cpu(), pixels)
        ]
        return torch.stack(run_grouped(self.classifier, canvases))

    def _canvas(
        self, image: ImageAccess, actions: torch.Tensor, pieces: dict[int, list[tuple[int, int, torch.Tensor]]]
    ) -> torch.Tensor:
        """The image at ``classifier_scale`` with every cell not in ``actions`` left at zero."""
        scale = self.classifier_scale
        height, width = (scaled_length(side, scale) for side in image.size)
        canvas = torch.zeros(image.channels, height, width)
        for cell in actions.nonzero()[:, 0].tolist():
            for y, x, piece in pieces[cell]:
                top, left = round(y * scale), round(x * scale)
                h, w = min(piece.shape[1], height - top), min(piece.shape[2], width - left)
                canvas[:, top : top + h, left : left + w] = piece[:, :h, :w]
        return to_module(canvas, self)

    # ------------------------------------------------------------------ attention
    def _attention(self, images: Sequence[ImageAccess], probs: torch.Tensor, actions: torch.Tensor) -> list[Attention]:
        result = []
        for image, p, a in zip(images, probs, actions.detach().cpu()):
            height, width = image.size
            kept = a.nonzero()[:, 0].tolist()
            boxes = [self._cell_box(image, cell) for cell in kept]
            centres = torch.tensor([[(t + b) / 2, (left + r) / 2] for t, b, left, r in boxes], dtype=torch.float64)
            result.append(
                Attention(
                    image_size=image.size,
                    stage1=AttentionMap(
                        (p / p.sum()).reshape(self.grid, self.grid), (0.0, 0.0), (height / self.grid, width / self.grid)
                    ),
                    sampled=SampledRegions(
                        centres.reshape(-1, 2),
                        max(1, round(max(height, width) / self.grid)),
                        torch.tensor(kept, dtype=torch.long),
                    ),
                )
            )
        return result
