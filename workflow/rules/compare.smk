# Stage: comparison with the paper (does it reproduce?). Every MNIST number the paper prints or claims
# (Figs. 1a, 1b, Remark 16, Fig. 3 / Remarks 17-18) next to ours under the paper's stated
# setting and under the authors' setting, and Fig. 1b's candidate causes one at a time:
# results/tables/paper_comparison.{parquet,csv} and results/tables/fig1b_variants.{parquet,csv}.


rule paper_comparison:
    input:
        diffusion="results/tables/diffusion.parquet",
        trajectory=compare_trajectory_input(),
        metrics=[f"results/{name}/metrics.parquet" for name in COMPARE_VARIANTS],
    output:
        parquet="results/tables/paper_comparison.parquet",
        csv=report(
            "results/tables/paper_comparison.csv",
            caption="../report/compare_paper.rst",
            category="Comparison with the paper",
            labels={"table": "the paper's MNIST numbers and ours"},
        ),
        variants_parquet="results/tables/fig1b_variants.parquet",
        variants_csv=report(
            "results/tables/fig1b_variants.csv",
            caption="../report/compare_fig1b_variants.rst",
            category="Comparison with the paper",
            labels={"table": "Fig. 1b: one candidate cause at a time"},
        ),
    log:
        "logs/compare/paper_comparison.log",
    localrule: True
    conda:
        "../../envs/sgdvi.yaml"
    params:
        figures=DIFFUSION_FIGURES,
        stated=COMPARE_STATED_FC,
        variants=lambda wildcards: {
            name: compare_variant_settings(name) for name in COMPARE_VARIANTS
        },
    script:
        "../scripts/paper_comparison.py"
