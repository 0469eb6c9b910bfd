"""Synthetic stand-ins for the paper's datasets, written in the constructed format.

One module per stand-in (``colon``, ``needle_camelyon``, ``traffic_signs``, ``fmow``,
``needle_mnist``, and ``parametric``, the learnability sweep's object of a set size); each exposes
``STAND_IN`` (a :class:`~zoomin.data.synthetic.common.StandIn`).
:func:`generate` is the registry entry point used by ``zoomin construct --source synthetic``.
docs/synthetic.md says how each stand-in differs from the real data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoomin.data.constructed import ConstructedDataset
from zoomin.data.synthetic import colon, fmow, needle_camelyon, needle_mnist, parametric, traffic_signs
from zoomin.data.synthetic.common import Rendered, StandIn, build, image_rng, resolve_params
from zoomin.errors import ConfigError

STAND_INS: dict[str, StandIn] = {
    module.STAND_IN.kind: module.STAND_IN
    for module in (colon, needle_camelyon, traffic_signs, fmow, needle_mnist, parametric)
}


def stand_in(kind: str) -> StandIn:
    """The stand-in called ``kind`` (ConfigError naming the known kinds otherwise)."""
    try:
        return STAND_INS[kind]
    except KeyError:
        raise ConfigError("construct.kind", f"unknown synthetic kind {kind!r} (known: {sorted(STAND_INS)})") from None


def generate(
    kind: str,
    out_dir: str | Path,
    seed: int,
    name: str | None = None,
    progress: bool = True,
    **params: Any,
) -> ConstructedDataset:
    """Generate synthetic stand-in ``kind`` into ``out_dir`` from ``seed``; ``params`` override its
    defaults (strings are cast to the default's type). Deterministic: same inputs, same pixels.
    ``name`` goes to ``dataset.json`` (default: ``kind``)."""
    return build(stand_in(kind), out_dir, seed, params, name=name, progress=progress)


def render_one(kind: str, seed: int, index: int, label: str, split: str, **params: Any) -> Rendered:
    """Draw image ``index`` of a stand-in in memory with a given label (for tests and figures)."""
    chosen = stand_in(kind)
    return chosen.render(image_rng(seed, index), label, split, resolve_params(chosen, params))


__all__ = ["STAND_INS", "Rendered", "StandIn", "generate", "render_one", "stand_in"]
