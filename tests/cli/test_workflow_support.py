"""The workflow adapters' glue: a job's log says how long it took to start and to work; a UserError
exits 1 with one line; a finished job's objects are frozen for a quick interpreter exit."""

from __future__ import annotations

import gc
import logging
import sys
import time
from types import SimpleNamespace

import pytest

from zoomin.cli.workflow_support import process_age, run_script
from zoomin.errors import UserError


@pytest.fixture
def job(tmp_path):
    """A stand-in for Snakemake's ``snakemake`` object; the root logger and the GC restored after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield SimpleNamespace(log=[str(tmp_path / "job.log")], threads=1, rule="table", wildcards={"table": "t1"})
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:], root.level = handlers, level
    gc.unfreeze()


def test_the_log_times_the_start_up_and_the_work(job):
    run_script(job, lambda: time.sleep(0.05))
    text = open(job.log[0]).read()
    assert "rule table, wildcards {'table': 't1'}, 1 thread(s)" in text
    work = float(text.split("work: ")[1].split(" s")[0])
    assert 0.05 <= work < 5
    if sys.platform.startswith("linux"):
        started = float(text.split("start-up: ")[1].split(" s")[0])
        assert 0 < started < 24 * 3600
    assert gc.get_freeze_count() > 0  # a finished job's objects are left out of the exit's collections


def test_a_user_error_exits_1_with_its_message(job):
    def fails():
        raise UserError("the config names no such dataset")

    with pytest.raises(SystemExit) as exit_:
        run_script(job, fails)
    assert exit_.value.code == 1
    assert "ERROR zoomin: the config names no such dataset" in open(job.log[0]).read()
    assert gc.get_freeze_count() == 0  # nothing frozen after a failure


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/stat")
def test_process_age_grows_with_the_clock():
    first = process_age()
    time.sleep(0.1)
    second = process_age()
    assert 0 < first < second and second - first == pytest.approx(0.1, abs=0.05)
