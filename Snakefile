# Chaudhari & Soatto (2018), "Stochastic gradient descent performs variational inference,
# converges to limit cycles for deep networks": the whole paper as one workflow.
#
#   snakemake --cores 8 --resources gpu=1                          # paper scale
#   snakemake --cores 2 --configfile config/quick.yaml             # quick offline profile
#   snakemake results/figures/fig1a.pdf                            # one figure
#
# Stages (one .smk each): data -> train -> diffusion (Figs. 1, 2) / trajectory (Fig. 3);
# theory (Fig. 4 and the numerical checks) needs no data.

from snakemake.utils import min_version

import sgdvi.config

min_version("9.17")


configfile: "config/config.yaml"


# The one entry point of the configuration: every key left out gets its default from
# workflow/schemas/config.schema.yaml, the result is validated and cross-checked, and `config`
# is updated in place, so every rule below reads the filled config. A bad key or value stops
# here in a few lines (key path, what is wrong, the closest valid key, the 1.0e+6 hint for 1e6);
# raised again from here so that Snakemake prints the message without the library's frames.
try:
    sgdvi.config.load(config)
except sgdvi.config.ConfigError as problem:
    raise sgdvi.config.ConfigError(str(problem)) from None


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/diffusion.smk"
include: "workflow/rules/trajectory.smk"
include: "workflow/rules/theory.smk"
include: "workflow/rules/irreversibility.smk"
include: "workflow/rules/compare.smk"
include: "workflow/rules/user.smk"
include: "workflow/rules/claims.smk"
include: "workflow/rules/report.smk"


# snakemake --report results/report.html (or .zip): figures with captions, tables, run config
report: "workflow/report/workflow.rst"


rule all:
    default_target: True
    input:
        all_targets(),
        irreversibility_targets(),
        report_targets(),
