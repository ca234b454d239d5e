"""Rule user_current: the probability-current test on the weights' path an experiment
recorded during training (sgdvi.recording_hook; Lemma 7, Remark 17)."""

from typing import TYPE_CHECKING

from sgdvi.infra.rulelog import rule_log
from sgdvi.recording_hook import RECORDING_NAME, analyse_user_recording

if TYPE_CHECKING:
    from snakemake.script import snakemake

name = snakemake.wildcards.experiment
with rule_log(snakemake.log[0], "user_current", failure=f"current test of {name} failed") as log:
    recording = f"{snakemake.input.trained}/{RECORDING_NAME}"
    table = analyse_user_recording(recording, snakemake.params.irreversibility, name)
    table.to_parquet(snakemake.output[0], index=False)
    first = table.iloc[0]
    log.info(
        "%s: %s over %d rows (every %s, k %d); strongest pair %s",
        name,
        first.verdict,
        first.n_epochs,
        first.every,
        first.k,
        first.strongest,
    )
