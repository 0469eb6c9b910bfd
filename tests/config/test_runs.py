"""Run ids, run seeds and the seeds of each run's random streams."""

from __future__ import annotations

import itertools

import pytest

import zoomin.config.load as zconfig
from tests.workflow.helpers import REPO
from zoomin.config.runs import STREAMS, Stream, run_seed, stream_seed


def test_no_two_streams_of_any_runs_share_a_seed():
    """The old offsets (seed + 1 for training draws, + 7 for evaluation) gave r0f0's training draws
    the seed of r0f1's weights and s0's evaluation draws that of s7's: every (run, stream) differs now."""
    cross_validation = [f"r{rep}f{fold}" for rep in range(10) for fold in range(100)]
    fixed_split = [f"s{seed}" for seed in range(1000)]
    for runs in (cross_validation, fixed_split):  # a dataset's runs are of one kind
        seeds = [stream_seed(run_seed(config_seed, run), stream)
                 for config_seed in (0, 1, 2) for run in runs for stream in Stream]
        assert len(seeds) == len(set(seeds))
    assert stream_seed(run_seed(0, "r0f0"), Stream.TRAINING) != stream_seed(run_seed(0, "r0f1"), Stream.INIT)
    assert stream_seed(run_seed(0, "s0"), Stream.EVALUATION) != stream_seed(run_seed(0, "s7"), Stream.INIT)
    assert len(Stream) <= STREAMS


@pytest.mark.parametrize("path", ["config/config.yaml", "config/paper.yaml", "tests/configs/tiny_config.yaml"])
def test_every_stream_of_every_run_of_a_shipped_config_is_distinct(path):
    experiment = zconfig.load(REPO / path)
    runs = {(d, r) for d in experiment.datasets for r in experiment.datasets[d].runs}
    seeds = {(d, r): run_seed(experiment.seed, r) for d, r in runs}
    streams = [stream_seed(seed, stream) for seed, stream in itertools.product(set(seeds.values()), Stream)]
    assert len(streams) == len(set(streams))
