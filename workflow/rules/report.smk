# The report's extras: one table of the time and peak memory of every heavy job (from the
# benchmark: files under results/benchmarks/), shown in the report's "Run" category.
#   snakemake --report results/report.html     (or .zip)


rule benchmark_summary:
    input:
        all_targets(),
    output:
        table=report(
            "results/tables/benchmarks.tsv",
            caption="../report/benchmarks.rst",
            category="Run",
            labels={"table": "time and memory of the heavy jobs"},
        ),
    log:
        "logs/report/benchmark_summary.log",
    localrule: True
    conda:
        "../../envs/sgdvi.yaml"
    params:
        root="results/benchmarks",
    script:
        "../scripts/benchmark_summary.py"


# The report's landing page (workflow/report/workflow.rst includes this file): the claims
# ledger (pooled over seeds), the comparison with the paper as a compact table, then
# thumbnails of the figures that carry it (Figs. 1, 3).
rule report_landing:
    input:
        comparison=landing_comparison(),
        claims=landing_claims(),
        figures=landing_figures(),
    output:
        "results/report/landing.rst",
    log:
        "logs/report/landing.log",
    localrule: True
    conda:
        "../../envs/sgdvi.yaml"
    script:
        "../scripts/report_landing.py"
