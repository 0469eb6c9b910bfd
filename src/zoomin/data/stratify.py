"""Seeded stratified splitting: deal each class's items into named splits in fixed shares.

:func:`stratified_split` is the one routine behind the validation carving of
:mod:`zoomin.data.folds`, the label/split plan of the synthetic stand-ins
(:mod:`zoomin.data.synthetic.common`) and the train/val split of the slide builders
(:mod:`zoomin.data.sources.camelyon16`, :mod:`zoomin.data.sources.slide_folder`). For each class it
draws one permutation of the class's items from the caller's generator and deals them, in that
order, to the splits: ``counts(n, shares)`` items each. The draws (one permutation per class, in
class order) are part of the contract: the cross-validation folds and the stand-ins' pixels, and so
the reported numbers, depend on them.

Two count rules: :func:`largest_remainder` (every split gets its share, rounded by largest
remainder, and at least one item when there are enough) and :func:`holdout_counts` (a held-out
first split of ``round(share * n)``, at least one and never all of a class of two or more).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

CountRule = Callable[[int, Sequence[float]], list[int]]


def largest_remainder(n: int, weights: Sequence[float]) -> list[int]:
    """Split ``n`` by ``weights`` (largest remainder), giving every part at least one when n allows."""
    weights = np.asarray(weights, dtype=float) / np.sum(weights)
    k = len(weights)
    floor = 1 if n >= k else 0
    rest = n - floor * k
    raw = weights * rest
    counts = np.floor(raw).astype(int)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: rest - counts.sum()]] += 1
    return [int(c) + floor for c in counts]


def holdout_counts(n: int, shares: Sequence[float]) -> list[int]:
    """``[k, n - k]``: ``k = round(shares[0] * n)`` held out, but at least one and at most ``n - 1``
    when ``n >= 2`` and the share is positive; a class of one item (or a zero share) holds out none.

    ``shares[0]`` is the held-out fraction of the whole (it is not normalised by ``sum(shares)``).
    """
    if n < 2 or shares[0] <= 0:
        return [0, n]
    take = min(n - 1, max(1, int(round(shares[0] * n))))
    return [take, n - take]


def stratified_split(
    labels: Sequence[str],
    shares: Mapping[str, float],
    rng: np.random.Generator,
    counts: CountRule = largest_remainder,
    classes: Sequence[str] | None = None,
) -> list[str]:
    """The split name of each item (index-aligned with ``labels``), stratified by label.

    For each class, in ``classes`` order (default: sorted labels), the indices of its items are
    permuted with ``rng`` and dealt to the splits of ``shares`` in their order, ``counts(n, weights)``
    each. Same labels, shares and generator state: same result.
    """
    labels = list(labels)
    names = list(shares)
    weights = [shares[name] for name in names]
    result = [""] * len(labels)
    for label in sorted(set(labels)) if classes is None else classes:
        members = rng.permutation(np.flatnonzero([item == label for item in labels]))
        start = 0
        for name, count in zip(names, counts(len(members), weights)):
            for index in members[start : start + count]:
                result[int(index)] = name
            start += count
    return result
