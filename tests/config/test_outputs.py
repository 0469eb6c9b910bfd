"""The config's `tables:` and `figures:` blocks: which runs they train, what they show, what they refuse."""

from __future__ import annotations

import copy

import pandas as pd
import pytest
import yaml

import zoomin.config.load as zconfig
from tests.workflow.helpers import REPO
from zoomin.errors import ConfigError

DEFAULT = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def _with(change, base=DEFAULT):
    config = copy.deepcopy(base)
    change(config)
    return config


def test_a_method_shared_by_tables_is_one_set_of_runs():
    experiment = zconfig.load(REPO / "config" / "config.yaml")
    trained = experiment.trained()
    assert len(trained) == len(set(trained))
    table1 = set(experiment.table("table1").rows)
    table4 = experiment.table("table4").rows
    assert ("colon", "zoomin_lenet") in table1 and ("colon", "zoomin_lenet") in table4  # Table 4's default row
    assert set(experiment.table("table3").rows) & set(experiment.table("table4").rows) == {
        ("colon", "zoomin_n5"), ("colon", "zoomin_lenet"), ("colon", "zoomin_n50")
    }
    run = experiment.run("colon", "zoomin_n50", "r0f1")  # a method only the tables list
    assert run.model.params.n == 50 and run.seed == experiment.run("colon", "zoomin_lenet", "r0f1").seed
    assert experiment.run("colon", "zoomin_contrastive", "r0f0").training.contrastive_start is not None
    assert experiment.table("table1").rows == tuple(
        (d, m) for d, ds in experiment.datasets.items() if ds.table == "table1" for m in ds.methods
    )


def test_table_rows_carry_the_settings_the_table_shows():
    experiment = zconfig.load(REPO / "config" / "config.yaml")
    rows = {(r["dataset"], r["method"]): r for r in experiment.table_rows("table4")}
    assert rows[("colon", "zoomin_lambda0")]["settings"]["entropy_lambda"] == 0.0
    assert rows[("colon", "zoomin_n5")]["settings"]["n"] == 5
    assert rows[("colon", "zoomin_lenet")]["settings"]["contrastive_start"] is None
    assert rows[("needle_camelyon", "zoomin_lenet")]["block"] == "NeedleCamelyon"


def test_a_table_may_take_the_first_runs_only_and_the_runs_it_skips_are_not_trained():
    experiment = zconfig.prepare(_with(lambda c: c["tables"]["table4"].update(runs=1)))
    table4 = experiment.table_runs("table4")
    assert {run for dataset, _, run in table4 if dataset == "colon"} == {"r0f0"}
    assert ("colon", "zoomin_lambda0", "r0f0") in table4 and ("colon", "zoomin_n50", "r0f0") in table4
    assert experiment.runs_used("colon", "zoomin_lambda0") == ("r0f0",)  # only Table 4 shows it
    assert experiment.runs_used("colon", "zoomin_lenet") == ("r0f0", "r0f1", "r0f2")  # Table 1 shows all
    assert experiment.runs_used("colon", "zoomin_n50") == ("r0f0", "r0f1", "r0f2")  # Table 3 and the sweep
    every = zconfig.prepare(_with(lambda c: c["tables"]["table4"].pop("runs", None)))
    # every run of each row: 3 folds of the 6 colon rows, every seed of the other datasets' rows
    every_run = sum(len(every.datasets[d].runs) for d, _, _ in table4)
    assert len(every.table_runs("table4")) == every_run > len(table4) + 2 * 6
    assert every.runs_used("colon", "zoomin_lambda0") == ("r0f0", "r0f1", "r0f2")


def test_a_method_may_train_fewer_runs_and_its_rows_aggregate_those():
    experiment = zconfig.prepare(_with(lambda c: c["methods"]["cnn"].update(runs=1)))
    assert experiment.runs_used("colon", "cnn") == ("r0f0",)
    assert experiment.runs_used("colon", "ats") == ("r0f0", "r0f1", "r0f2")
    table1 = experiment.table_runs("table1")
    assert [run for d, m, run in table1 if (d, m) == ("colon", "cnn")] == ["r0f0"]
    assert [run for d, m, run in table1 if (d, m) == ("colon", "ats")] == ["r0f0", "r0f1", "r0f2"]
    with pytest.raises(ConfigError, match="methods.cnn.runs"):
        zconfig.prepare(_with(lambda c: c["methods"]["cnn"].update(runs=0)))


BAD_TABLES = {
    "a table taking no runs": (lambda c: c["tables"]["table4"].update(runs=0), "tables.table4.runs"),
    "unknown dataset in a row": (
        lambda c: c["tables"]["table3"]["rows"].append(["imagenet", "ats"]), "tables.table3.rows[5]"),
    "unknown method in a row": (
        lambda c: c["tables"]["table3"]["rows"].append(["colon", "vit"]), "tables.table3.rows[5]"),
    "a row twice": (lambda c: c["tables"]["table3"]["rows"].append(["colon", "ats"]), "tables.table3.rows[5]"),
    "a table named table1": (lambda c: c["tables"].update(table1=c["tables"]["table3"]), "tables.table1"),
    "unknown setting": (lambda c: c["tables"]["table3"].update(settings=["colour"]), "tables.table3.settings"),
    "pareto of an unknown method": (
        lambda c: c["figures"]["pareto"]["methods"].append("vit"), "figures.pareto.methods"),
    "spearman of an unknown dataset": (lambda c: c["figures"]["spearman"].append("mnist"), "figures.spearman"),
    "a table-1 dataset without methods": (lambda c: c["datasets"]["colon"].pop("methods"), "datasets.colon.methods"),
}


@pytest.mark.parametrize("case", sorted(BAD_TABLES))
def test_bad_tables_and_figures_are_refused_naming_the_key(case):
    change, key = BAD_TABLES[case]
    with pytest.raises(ConfigError) as info:
        zconfig.prepare(_with(change))
    assert key in str(info.value)


def test_every_row_of_tables_3_and_4_has_the_papers_numbers():
    experiment = zconfig.load(REPO / "config" / "config.yaml")
    for name in ("table3", "table4", "appendix_j"):
        paper = pd.read_csv(REPO / "config" / f"paper_{name}.csv")
        keys = set(zip(paper.block, paper.method))
        for row in experiment.table_rows(name):
            assert (row["block"], row["method"]) in keys, (name, row["method"])
