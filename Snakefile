# zoomin: the Zoom-In network's experiments as a Snakemake workflow.
#   snakemake --cores 8 results/table1.csv          (embedded default: synthetic data, CPU)
#   snakemake --cores 8 results/table1.csv results/table2.csv --configfile config/paper.yaml   (real datasets)
#   snakemake --cores 2 learnability                (the learnability map; not part of `all`)
from snakemake.utils import min_version

min_version("9.0")


# The embedded default, unless config files are named on the command line: `--configfile` then
# REPLACES it (Snakemake would otherwise merge the two, key by key, e.g. the synthetic datasets
# into config/paper.yaml). `--config key=value` alone still edits the default.
if not workflow.config_settings.configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/datasets.smk"
include: "workflow/rules/downloads.smk"
include: "workflow/rules/views.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/learnability.smk"


rule all:
    default_target: True
    input:
        final_outputs(),


# What `snakemake --report results/report.html built` bundles: every output of `all` built so far
# (after `snakemake table1`, Table 1 and its figures; after `all`, everything). A report of `all`
# itself refuses to start while any of its outputs is missing.
rule built:
    input:
        lambda wc: [path for path in final_outputs() if os.path.exists(path)],


# Each table of the datasets' `table:` key with its figures, e.g. `snakemake --cores 2 table1`; the
# config's other tables are their files (results/table3.csv, ...).
for _table in sorted({ds.table for ds in EXP.datasets.values() if ds.table is not None}):

    rule:
        name:
            _table
        input:
            table_with_figures(_table),
