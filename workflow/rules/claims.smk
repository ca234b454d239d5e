# Stage: the claims ledger. Each claim of the paper (Figs. 1a/1b low rank, Remark 16, Fig. 3a,
# Fig. 3b, Fig. 3c / Remark 18, the probability current of Remark 17, Lemma 20 on data,
# Remarks 11-12), once per setting (stated, authors'), pooled over seeds with an interval, a
# combined test and a verdict (holds / fails / undecided), the per-seed numbers as supporting
# rows: results/tables/claims.{parquet,csv}. Per trajectory variant, the false-positive rates
# of the per-seed tests on structureless surrogates of the projected increments
# (results/claims/calibration_{variant}*.parquet; validation rows of theory.parquet).
# Input functions and settings: common.smk.


rule claims_calibration:
    input:
        currents=claims_calibration_currents,
    output:
        details="results/claims/calibration_{variant}.parquet",
        rows="results/claims/calibration_{variant}_rows.parquet",
    log:
        "logs/claims/calibration_{variant}.log",
    benchmark:
        "results/benchmarks/claims/calibration_{variant}.tsv"
    conda:
        "../../envs/sgdvi.yaml"
    threads: 1
    resources:
        # paper scale (99,000 x 10 projected coordinates, 1,000 surrogates): ~2 min, < 1 GB
        mem_mb=2000,
        runtime=20,
    params:
        settings=claims_calibration_settings,
    script:
        "../scripts/claims_calibration.py"


rule claims_ledger:
    input:
        diffusion=claims_diffusion_input(),
        trajectory=compare_trajectory_input(),
        calibration=claims_calibration_files("details"),
    output:
        parquet="results/tables/claims.parquet",
        csv=report(
            "results/tables/claims.csv",
            caption="../report/claims.rst",
            category="Comparison with the paper",
            labels={"table": "the paper's claims, pooled over seeds"},
        ),
    log:
        "logs/claims/ledger.log",
    localrule: True
    conda:
        "../../envs/sgdvi.yaml"
    params:
        figures=DIFFUSION_FIGURES,
        settings=claims_settings(),
    script:
        "../scripts/claims_ledger.py"
