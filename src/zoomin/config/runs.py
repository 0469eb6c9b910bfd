"""Run ids and seeds: which runs a dataset has, and which seeds each run's random streams use.

A dataset is evaluated either by cross-validation (runs ``r<repetition>f<fold>``) or on its fixed
split with several training seeds (runs ``s<seed>``). A run's seed is

    1000 * config seed + 100 * repetition + fold      (cross-validation)
    1000 * config seed + run seed                     (fixed split)

which is one-to-one as long as folds < 100, repetitions < 10 and run seeds < 1000 (checked by
:func:`run_ids`): two runs of an experiment never share a seed. Each use of randomness in a run
then has its own stream (:class:`Stream`), seeded with ``STREAMS * run seed + stream``, so that no
two streams of any runs share a seed either (docs/reproducibility.md lists every stream).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from zoomin.errors import ConfigError

MAX_FOLDS = 100
MAX_REPETITIONS = 10
MAX_RUN_SEED = 999



class Stream(IntEnum):
    """The random streams of one run, each seeded by :func:`stream_seed`."""

    INIT = 0  # initial weights (torch's global RNG)
    ORDER = 1  # the order of the training images in each epoch
    TRAINING = 2  # Monte Carlo draws of training (tiles, sub-tiles, the contrastive loss's)
    EVALUATION = 3  # draws of validation and test passes, and of zoomin predict
    PRETRAINING = 4  # tiles and positions drawn to pre-train as tile classifiers (zoomin.training.pretrain)
    FIGURES = 5  # draws of the figures that show a trained model's attention and samples
    COST = 6  # draws of the FLOPs, memory and time passes (zoomin.measure)


STREAMS = 16  # streams a run may have (room for new ones without moving the others)


def stream_seed(run_seed: int, stream: Stream) -> int:
    """The seed of ``stream`` of the run seeded ``run_seed``: one-to-one in (run seed, stream)."""
    return STREAMS * int(run_seed) + int(stream)

RUN_PATTERN = re.compile(r"^(?:r(\d+)f(\d+)|s(\d+))$")


@dataclass(frozen=True)
class RunId:
    """A parsed run id: ``fold`` and ``repetition`` for cross-validation, ``seed`` otherwise."""

    text: str
    fold: int | None = None
    repetition: int = 0
    seed: int | None = None

    @property
    def cross_validation(self) -> bool:
        return self.fold is not None


def parse_run(text: str) -> RunId:
    """``r1f3`` -> fold 3 of repetition 1; ``s2`` -> seed 2."""
    match = RUN_PATTERN.match(text)
    if match is None:
        raise ConfigError("run", f"{text!r} is not a run id (r<repetition>f<fold> or s<seed>)")
    repetition, fold, seed = match.groups()
    if seed is not None:
        return RunId(text, seed=int(seed))
    return RunId(text, fold=int(fold), repetition=int(repetition))


def run_ids(runs: dict[str, Any], key: str = "runs") -> list[str]:
    """The run ids of a dataset's ``runs`` block (``{folds, repetitions}`` or ``{seeds}``)."""
    if "folds" in runs:
        folds, repetitions = int(runs["folds"]), int(runs.get("repetitions", 1))
        if not 2 <= folds <= MAX_FOLDS:
            raise ConfigError(f"{key}.folds", f"must be between 2 and {MAX_FOLDS}, got {folds}")
        if not 1 <= repetitions <= MAX_REPETITIONS:
            raise ConfigError(f"{key}.repetitions", f"must be between 1 and {MAX_REPETITIONS}, got {repetitions}")
        return [f"r{rep}f{fold}" for rep in range(repetitions) for fold in range(folds)]
    seeds = [int(seed) for seed in runs["seeds"]]
    for seed in seeds:
        if not 0 <= seed <= MAX_RUN_SEED:
            raise ConfigError(f"{key}.seeds", f"run seeds must be between 0 and {MAX_RUN_SEED}, got {seed}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{key}.seeds", f"a seed is listed twice: {seeds}")
    return [f"s{seed}" for seed in seeds]


def run_seed(config_seed: int, run: str | RunId) -> int:
    """The seed of one run (see the module docstring)."""
    parsed = parse_run(run) if isinstance(run, str) else run
    if parsed.cross_validation:
        return 1000 * int(config_seed) + 100 * parsed.repetition + int(parsed.fold)
    return 1000 * int(config_seed) + int(parsed.seed)
