# Stage: theory (Sections III and V; no data). Fig. 4 (Example 19) and numerical checks of the
# theorems beyond the paper: the SDE's steady state and circulation, the Fokker-Planck free
# energy (Theorem 5), Lemma 20 and Remarks 11/12. Every number lands in
# results/tables/theory.parquet (one row per quantity, with its reference and tolerance).


rule theory_double_well:
    output:
        table="results/theory/double_well.parquet",
        critical="results/theory/critical_points.parquet",
    log:
        "logs/theory/double_well.log",
    conda:
        "../../envs/sgdvi.yaml"
    params:
        lambdas=THEORY_LAMBDAS,
    script:
        "../scripts/theory_double_well.py"


rule theory_fig4:
    input:
        critical="results/theory/critical_points.parquet",
    output:
        pdf="results/figures/fig4{panel}.pdf",
        png=report(
            "results/figures/fig4{panel}.png",
            caption="../report/fig4.rst",
            category="Theory",
            subcategory="Fig. 4 (Example 19)",
        ),
    log:
        "logs/theory/fig4{panel}.log",
    wildcard_constraints:
        panel="[a-z]",
    conda:
        "../../envs/sgdvi.yaml"
    params:
        lam=lambda wildcards: FIG4_PANELS[wildcards.panel],
        box=THEORY["fig4"]["box"],
        density=THEORY["fig4"]["density"],
    script:
        "../scripts/theory_fig4.py"


rule theory_sde:
    output:
        npz="results/theory/sde/lambda_{lam}.npz",
        table="results/theory/sde/lambda_{lam}.parquet",
    log:
        "logs/theory/sde_lambda_{lam}.log",
    benchmark:
        "results/benchmarks/theory/sde_lambda_{lam}.tsv"
    wildcard_constraints:
        lam=r"[0-9][0-9.e+-]*",
    conda:
        "../../envs/sgdvi.yaml"
    threads: 1
    params:
        sde=THEORY["sde"],
    script:
        "../scripts/theory_sde.py"


rule theory_sde_figures:
    input:
        npz=[f"{p}.npz" for p in THEORY_SDE],
        tables=[f"{p}.parquet" for p in THEORY_SDE],
    output:
        marginals="results/figures/sde_marginals.pdf",
        marginals_png=report(
            "results/figures/sde_marginals.png",
            caption="../report/sde_marginals.rst",
            category="Theory",
            subcategory="SDE steady state",
        ),
        circulation="results/figures/sde_circulation.pdf",
        circulation_png=report(
            "results/figures/sde_circulation.png",
            caption="../report/sde_circulation.rst",
            category="Theory",
            subcategory="SDE steady state",
        ),
        paths="results/figures/sde_paths.pdf",
        paths_png=report(
            "results/figures/sde_paths.png",
            caption="../report/sde_paths.rst",
            category="Theory",
            subcategory="SDE steady state",
        ),
    log:
        "logs/theory/sde_figures.log",
    conda:
        "../../envs/sgdvi.yaml"
    script:
        "../scripts/theory_sde_figures.py"


rule theory_fokker_planck:
    output:
        npz="results/theory/fokker_planck/lambda_{lam}.npz",
        table="results/theory/fokker_planck/lambda_{lam}.parquet",
    log:
        "logs/theory/fokker_planck_lambda_{lam}.log",
    benchmark:
        "results/benchmarks/theory/fokker_planck_lambda_{lam}.tsv"
    wildcard_constraints:
        lam=r"[0-9][0-9.e+-]*",
    conda:
        "../../envs/sgdvi.yaml"
    threads: 1
    params:
        fp=THEORY["fokker_planck"],
    script:
        "../scripts/theory_fokker_planck.py"


rule theory_fokker_planck_figures:
    input:
        npz=[f"{p}.npz" for p in THEORY_FP],
    output:
        free_energy="results/figures/free_energy.pdf",
        free_energy_png=report(
            "results/figures/free_energy.png",
            caption="../report/free_energy.rst",
            category="Theory",
            subcategory="Fokker-Planck free energy",
        ),
        density="results/figures/fp_density.pdf",
        density_png=report(
            "results/figures/fp_density.png",
            caption="../report/fp_density.rst",
            category="Theory",
            subcategory="Fokker-Planck free energy",
        ),
    log:
        "logs/theory/fokker_planck_figures.log",
    conda:
        "../../envs/sgdvi.yaml"
    script:
        "../scripts/theory_fokker_planck_figures.py"


rule theory_linearization:
    input:
        critical="results/theory/critical_points.parquet",
    output:
        npz="results/theory/linearization.npz",
        table="results/theory/linearization.parquet",
    log:
        "logs/theory/linearization.log",
    benchmark:
        "results/benchmarks/theory/linearization.tsv"
    conda:
        "../../envs/sgdvi.yaml"
    threads: 1
    params:
        linearization=THEORY["linearization"],
    script:
        "../scripts/theory_linearization.py"


rule theory_lemma20_figure:
    input:
        npz="results/theory/linearization.npz",
    output:
        pdf="results/figures/lemma20.pdf",
        png=report(
            "results/figures/lemma20.png",
            caption="../report/lemma20.rst",
            category="Theory",
            subcategory="Lemma 20",
        ),
    log:
        "logs/theory/lemma20_figure.log",
    conda:
        "../../envs/sgdvi.yaml"
    script:
        "../scripts/theory_lemma20_figure.py"


rule theory_temperature:
    output:
        table="results/theory/temperature.parquet",
    log:
        "logs/theory/temperature.log",
    conda:
        "../../envs/sgdvi.yaml"
    params:
        remarks=THEORY["remarks"],
    script:
        "../scripts/theory_temperature.py"


rule theory_temperature_figure:
    output:
        pdf="results/figures/temperature.pdf",
        png=report(
            "results/figures/temperature.png",
            caption="../report/temperature.rst",
            category="Theory",
            subcategory="Remarks 11 and 12",
        ),
    log:
        "logs/theory/temperature_figure.log",
    conda:
        "../../envs/sgdvi.yaml"
    params:
        N=THEORY["remarks"]["N"],
        eta=THEORY["remarks"]["eta"][0],
        b=THEORY["remarks"]["b"][0],
    script:
        "../scripts/theory_temperature_figure.py"


rule theory_table:
    input:
        "results/theory/double_well.parquet",
        [f"{p}.parquet" for p in THEORY_SDE],
        [f"{p}.parquet" for p in THEORY_FP],
        "results/theory/linearization.parquet",
        "results/theory/temperature.parquet",
        "results/theory/irreversibility.parquet",
        # false-positive rates of the per-seed tests (claims.smk), as validation rows
        claims_calibration_files("rows"),
    output:
        "results/tables/theory.parquet",
    log:
        "logs/theory/table.log",
    conda:
        "../../envs/sgdvi.yaml"
    script:
        "../scripts/theory_table.py"
