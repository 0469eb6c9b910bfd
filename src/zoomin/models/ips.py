"""IPS: iterative patch selection (Bergner et al., ICLR 2023), a slide baseline no paper table has.

A slide is a bag of instances (:mod:`.bags`): the ``patch`` x ``patch`` px cells that hold tissue,
read at ``scale``. Per image:

1. Selection, without gradients: a memory of ``memory`` (M) instances starts with the first M;
   then, ``chunk`` (I) instances at a time, the new ones are embedded, memory and new embeddings
   are scored by the aggregator's cross-attention (the attention weight of its learned query on each
   embedding, averaged over the heads, softmax over memory and chunk together) and the M best stay.
   Memory is bounded by M + I embeddings however large the slide.
2. With gradients: the M selected instances are embedded again and pooled by the same
   cross-attention (:class:`CrossAttentionPool`: a learned query, ``heads`` heads, a residual and
   LayerNorm, then a two-layer MLP with a residual and LayerNorm); a linear layer gives the logits.

The network has no dropout or batch statistics, so the embeddings of step 2 are those step 1
ranked. As in the reference, selection sees the bag in its stored order (here row-major over the
grid) and uses no positional encoding (the reference's is optional). The patch encoder is the
CPU-sized :class:`zoomin.models.tissue_bags.PatchEncoder`; the reference uses a ResNet-18/50 (docs/methods.md,
IPS).

Attention (one stage): the final cross-attention weights (mean over heads) on the M selected
instances, on the instance grid; the M instances are the sampled regions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from zoomin.image_access import ImageAccess
from zoomin.models.params import IPSParams
from zoomin.models.tissue_bags import (
    BagClassifier,
    BagResult,
    PatchEncoder,
    bag_attention,
    cell_centres,
    instance_grid,
    read_instances,
)


class CrossAttentionPool(nn.Module):
    """A learned query attending over ``(n, dim)`` embeddings with ``heads`` heads -> ``(dim,)``."""

    def __init__(self, dim: int, heads: int, inner: int):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        bound = math.sqrt(1.0 / self.head_dim)
        self.query = nn.Parameter(torch.empty(1, dim).uniform_(-bound, bound))
        self.q, self.k, self.v = (nn.Linear(dim, dim, bias=False) for _ in range(3))
        self.out = nn.Linear(dim, dim, bias=False)
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, inner), nn.ReLU(), nn.Linear(inner, dim))

    def weights(self, embeddings: torch.Tensor) -> torch.Tensor:
        """``(heads, n)``: each head's softmax attention of the query over the embeddings."""
        n = embeddings.shape[0]
        # functional: a parameter passed to a module's forward trips the FLOP counter's module hooks
        q = F.linear(self.query, self.q.weight).view(self.heads, self.head_dim)
        k = self.k(embeddings).view(n, self.heads, self.head_dim)
        return torch.softmax(torch.einsum("hd,nhd->hn", q, k) / math.sqrt(self.head_dim), dim=1)

    def scores(self, embeddings: torch.Tensor) -> torch.Tensor:
        """``(n,)``: the attention weights averaged over the heads (IPS's selection score)."""
        return self.weights(embeddings).mean(dim=0)

    def forward(self, embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The pooled ``(dim,)`` representation and the ``(n,)`` head-averaged weights."""
        n = embeddings.shape[0]
        weights = self.weights(embeddings)
        values = self.v(embeddings).view(n, self.heads, self.head_dim)
        pooled = torch.einsum("hn,nhd->hd", weights, values).reshape(-1)
        x = self.norm1(self.out(pooled) + self.query[0])
        return self.norm2(x + self.mlp(x)), weights.mean(dim=0)


class IPSNet(BagClassifier):
    """Iterative patch selection with a cross-attention aggregator; see the module docstring."""

    def __init__(self, num_classes: int, params: IPSParams):
        super().__init__()
        self.params = params
        self.encoder = PatchEncoder(params.width)
        dim = self.encoder.out_dim
        self.pool = CrossAttentionPool(dim, params.heads, 2 * dim)
        self.classifier = nn.Linear(dim, num_classes)

    def instances(self, image: ImageAccess, centres: torch.Tensor) -> torch.Tensor:
        return read_instances(image, centres, self.params.patch, self.params.scale, self)

    def select(self, image: ImageAccess, centres: torch.Tensor) -> torch.Tensor:
        """Positions (into ``centres``) of the M instances IPS keeps, without gradients."""
        memory, chunk = self.params.memory, self.params.chunk
        with torch.no_grad():
            kept = torch.arange(min(memory, len(centres)))
            embeddings = self.encoder(self.instances(image, centres[kept]))
            for start in range(len(kept), len(centres), chunk):
                new = torch.arange(start, min(start + chunk, len(centres)))
                candidates = torch.cat([kept, new])
                embeddings = torch.cat([embeddings, self.encoder(self.instances(image, centres[new]))])
                best = torch.topk(self.pool.scores(embeddings).cpu(), memory).indices
                kept, embeddings = candidates[best], embeddings[best.to(embeddings.device)]
        return kept.sort().values

    def classify(self, image: ImageAccess) -> BagResult:
        """Logits from the image's selected instances."""
        patch = self.params.patch
        shape, cells = instance_grid(image, patch)
        centres = cell_centres(cells, shape[1], patch)
        kept = self.select(image, centres)
        pooled, weights = self.pool(self.encoder(self.instances(image, centres[kept])))
        on_bag = torch.zeros(len(cells), dtype=weights.dtype, device=weights.device).index_put(
            (kept.to(weights.device),), weights
        )
        return BagResult(self.classifier(pooled), bag_attention(image, shape, patch, cells, on_bag, kept))
