"""Glue for the workflow's ``script:`` adapters: logging into the rule's log file, clear failures."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from zoomin.errors import UserError


def run_script(snakemake: Any, body: Callable[[], Any]) -> None:
    """Log to ``snakemake.log[0]`` and stderr, run ``body``; a UserError exits 1 with one clear line
    (logged once: the stderr handler shows it to the user, the file handler keeps it in the log)."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if snakemake.log:
        handlers.append(logging.FileHandler(snakemake.log[0], mode="w"))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    threads = max(1, int(snakemake.threads))
    torch = sys.modules.get("torch")  # only jobs that use torch import it (slide caches stay small)
    if torch is not None:
        torch.set_num_threads(threads)
    logging.getLogger("zoomin").info(
        "rule %s, wildcards %s, %d thread(s)", snakemake.rule, dict(snakemake.wildcards), threads
    )
    try:
        body()
    except UserError as error:
        logging.getLogger("zoomin").error("%s", error)
        sys.exit(1)
    except Exception:
        logging.getLogger("zoomin").exception("failed")
        raise
