"""The tiny end-to-end config through profiles/slurm on a real single-node SLURM cluster.

tests/slurm_cluster.py starts munged, slurmctld and slurmd on localhost (Debian's slurm-wlm;
`.ci/install-slurm` installs it) with one fake GPU. Snakemake then runs the whole tiny workflow
with `--profile profiles/slurm --executor slurm` as a user would on a cluster, plus what this
cluster needs and a real one does not:

* `--slurm-status-command squeue` and a short `--slurm-init-seconds-before-status-checks`: the
  cluster has no accounting database, and sacct (the plugin's default) would leave Snakemake
  waiting forever;
* `--max-threads <CPUs>` and `--cores <CPUs>`: the node has as many CPUs as this machine,
  fewer than the profile allows one job or group job;
* `gpu=1` for the rules that ask for a GPU when device is cuda (the jobs still run on the CPU,
  device: cpu), so the fake GPU is scheduled through the plugin's `--gpus=1`.

The test checks that every planned job ran as a SLURM job (local rules excepted) with the
profile's time and memory, that the GPU rules held the GPU, and that the outputs are complete.
Skipped when not root or when slurm-wlm cannot be installed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

import dag_tools
from slurm_cluster import LocalSlurm, SlurmUnavailable, ensure_installed

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "profiles" / "slurm"
RUN_TIMEOUT = 480  # seconds for the whole workflow through SLURM
# the profile, plus what this cluster needs (no accounting: squeue; a short first status check)
PROFILE_ARGS = (
    "--profile",
    str(PROFILE),
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "1",
    "--slurm-keep-successful-logs",
)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def profile_settings() -> dict:
    return yaml.safe_load((PROFILE / "config.yaml").read_text())


@pytest.fixture(scope="module")
def cluster():
    if os.geteuid() != 0:
        pytest.skip("needs root: starts slurmctld, slurmd and munged by hand")
    try:
        ensure_installed()
    except SlurmUnavailable as err:
        pytest.skip(f"slurm-wlm is not installed and cannot be installed here: {err}")
    profile = profile_settings()
    requested = [
        int(res["mem_mb"])
        for res in [profile.get("default-resources") or {}, *profile["set-resources"].values()]
        if "mem_mb" in res
    ]
    # the memory limit of one group job (profile `resources: [mem_mb=...]`)
    requested += [int(r.split("=")[1]) for r in profile.get("resources", []) if "mem_mb=" in r]
    # Memory is bookkeeping here (no cgroups): the node advertises enough for the paper-scale
    # requests of the profile, which the tiny config never uses.
    # CPUs: twice the machine's, so that SLURM runs two 2-CPU jobs side by side as a local
    # `snakemake --cores 2` would interleave them (the jobs are tiny; this tests scheduling).
    slurm = LocalSlurm(cpus=2 * (os.cpu_count() or 1), mem_mb=max(requested) + 1000)
    slurm.start()
    try:
        yield slurm
    finally:
        slurm.stop()


def _run_through_slurm(cluster: LocalSlurm, workdir: Path, *args: str) -> subprocess.Popen:
    env = cluster.env()
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.Popen(
        dag_tools.snakemake_args(workdir, "config/tiny.yaml", *args),
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _failure_report(cluster: LocalSlurm, workdir: Path, output: str) -> str:
    parts = [output[-8000:], cluster.logs(3000)]
    logdir = workdir / ".snakemake" / "slurm_logs"
    for log in sorted(logdir.rglob("*.log")) if logdir.exists() else []:
        parts.append(f"--- {log.relative_to(workdir)}\n{log.read_text(errors='replace')[-3000:]}")
    for log in sorted((workdir / "logs").rglob("*.log")) if (workdir / "logs").exists() else []:
        parts.append(f"--- {log.relative_to(workdir)}\n{log.read_text(errors='replace')[-2000:]}")
    return "\n".join(parts)


def test_tiny_workflow_runs_to_completion_through_slurm(cluster, tiny_workdir):
    work = tiny_workdir
    profile = profile_settings()
    cpus = os.cpu_count() or 1

    # What will run, and which rules ask for a GPU when the device is CUDA.
    planned = dag_tools.dry_run(work, env=cluster.env())
    gpu_rules = {
        j.rule
        for j in dag_tools.dry_run(work, "--config", "device=cuda", env=cluster.env())
        if j.gpu
    }
    assert planned and gpu_rules, "the tiny config should plan jobs, some of them on a GPU"

    t0 = time.monotonic()
    proc = _run_through_slurm(
        cluster,
        work,
        *PROFILE_ARGS,
        "--max-threads",
        str(cpus),
        "--cores",
        str(cpus),
        "--latency-wait",
        "10",
        "--set-resources",
        *dag_tools.set_resources_args(profile, gpu_rules),
    )
    try:
        output, _ = proc.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        # SIGTERM lets Snakemake scancel its jobs; SIGKILL if it does not stop in time.
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            output, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
        pytest.fail(
            f"snakemake through SLURM did not finish in {RUN_TIMEOUT} s:\n"
            + _failure_report(cluster, work, output)
        )
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, _failure_report(cluster, work, output)
    print(f"tiny workflow through SLURM: {len(planned)} jobs in {elapsed:.0f} s")

    # Complete: nothing left to do, and every planned output exists.
    assert dag_tools.dry_run(work) == [], "a dry run after the SLURM run still plans jobs"
    for job in planned:
        for out in job.outputs:
            path = work / out
            assert path.exists(), f"{out} (rule {job.rule}) is missing"

    # The report holds every figure and the benchmark table.
    dag_tools.run(work, "--report", "results/report.zip", env=cluster.env(), timeout=300)
    with zipfile.ZipFile(work / "results" / "report.zip") as report:
        in_report = {Path(name).name for name in report.namelist()}
    # report() entries are the PNGs (browsers show no PDF inside the report)
    figures = {p.name for p in (work / "results" / "figures").glob("*.png")}
    assert figures and figures <= in_report, f"figures missing: {sorted(figures - in_report)}"
    assert "benchmarks.tsv" in in_report

    # The run's own job list says which jobs ran locally (download rules, copies, `all`) and
    # which ran together as one group job (the profile's `groups:`).
    ran = dag_tools.parse_dry_run(output)
    assert sorted(j.rule for j in ran) == sorted(j.rule for j in planned), "ran != planned"
    local = {j.rule for j in ran if j.local}
    remote = [j for j in ran if not j.local]
    singles = [j for j in remote if j.group is None]
    group_jobs = sorted({j.group for j in remote if j.group is not None})
    group_names = set((profile.get("groups") or {}).values())
    assert singles, "no job went to SLURM on its own"
    for name, _ in group_jobs:
        assert name in group_names, f"group {name} is not one of the profile's"

    # One SLURM job per single job and per group job, all completed. The plugin's comment is
    # rule_<rule>[_wildcards_<values>] or rule_<group>_<member rules> for a group job.
    slurm_jobs = cluster.squeue()
    by_name: dict[str, list[dict[str, str]]] = {}
    for job in slurm_jobs:
        name = job["Comment"].split("_wildcards_")[0].removeprefix("rule_")
        name = next((g for g in group_names if name.startswith(f"{g}_")), name)
        by_name.setdefault(name, []).append(job)
        assert job["State"] == "COMPLETED", job
    seen_singles = sorted(n for n, jobs in by_name.items() if n not in group_names for _ in jobs)
    assert seen_singles == sorted(j.rule for j in singles), (
        f"SLURM jobs {sorted(by_name)} are not the non-local jobs of the run"
    )
    seen_groups = sorted(n for n, jobs in by_name.items() if n in group_names for _ in jobs)
    assert seen_groups == sorted(name for name, _ in group_jobs)
    assert not local & set(by_name), f"local rules {local & set(by_name)} went to SLURM"
    assert len(slurm_jobs) < len(remote), "grouping should save SLURM jobs"

    # SLURM got what Snakemake asked for: the profile's values where it sets them, else the
    # rule's own (e.g. a memory function of the data size), else the profile's defaults.
    per_rule = profile.get("set-resources") or {}
    defaults = profile["default-resources"]
    for job in singles:
        res = job.resources
        for key in ("mem_mb", "runtime"):
            if key in per_rule.get(job.rule, {}):
                assert int(res[key]) == per_rule[job.rule][key], (job.rule, key, res)
        assert "runtime" in res and "mem_mb" in res, (job.rule, res)
    asked = {(j.rule, int(j.resources["mem_mb"]), int(j.resources["runtime"])) for j in singles}
    for name, jobs in by_name.items():
        for job in jobs:
            gres = cluster.job_gres(job["JobID"])
            if name in group_names:
                assert gres == "", f"group job {name} was allocated {gres!r}: {job}"
                continue
            got = (name, int(job["MinMemory"].removesuffix("M")), _minutes(job["TimeLimit"]))
            assert got in asked, f"SLURM job {job} does not match what Snakemake asked: {asked}"
            if name in gpu_rules:
                assert "gpu:1" in job["tres-per-job"], f"GPU rule {name} asked for no GPU: {job}"
                assert gres == "gpu:1", f"GPU rule {name} was allocated {gres!r}: {job}"
            else:
                assert gres == "", f"CPU rule {name} was allocated {gres!r}: {job}"
    assert gpu_rules & set(by_name), "no GPU job went through SLURM"
    assert any(int(j.resources["runtime"]) == defaults["runtime"] for j in singles), (
        "no job used the profile's default runtime"
    )


def _minutes(limit: str) -> int:
    """squeue's %l time limit ([days-]hours:minutes:seconds or minutes:seconds) in minutes."""
    days, _, rest = limit.rpartition("-")
    parts = [int(p) for p in rest.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    hours, minutes, seconds = parts
    return (int(days or 0) * 24 + hours) * 60 + minutes + (1 if seconds else 0)


def test_a_diffusion_job_runs_as_one_slurm_job_of_two_tasks(cluster, tiny_workdir):
    """diffusion.processes: 2 under the slurm profile: one SLURM job with two tasks
    (`--ntasks=2`, the plugin's mpi layout), whose srun starts the two gloo processes of the
    matrix-free D(x); the spectrum equals the exact one of a local single-process run."""
    from test_diffusion_workflow import fake_inputs

    from sgdvi.diffusion.compute import load_result

    work = tiny_workdir
    fake_inputs(work)
    target = "results/fc-mnist7/diffusion/1.0.npz"
    dag_tools.run(work, "--cores", "2", target, timeout=300)
    exact = load_result(work / target)
    (work / target).unlink()

    config = work / "config" / "tiny.yaml"
    cfg = yaml.safe_load(config.read_text())
    cfg["diffusion"].update(solver="matrix-free", processes=2, threads=1)
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    before = {j["JobID"] for j in cluster.squeue()}
    proc = _run_through_slurm(
        cluster,
        work,
        *PROFILE_ARGS,
        "--cores",
        "2",
        "--latency-wait",
        "10",
        "--",
        target,
    )
    try:
        output, _ = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
        pytest.fail(
            "the two-task D(x) job did not finish:\n" + _failure_report(cluster, work, output)
        )
    assert proc.returncode == 0, _failure_report(cluster, work, output)

    jobs = [
        j
        for j in cluster.squeue(("JobID", "Comment", "NumTasks", "NumCPUs", "State"))
        if j["JobID"] not in before
    ]
    assert len(jobs) == 1, jobs
    assert jobs[0]["Comment"].startswith("rule_diffusion_spectrum"), jobs
    assert jobs[0]["NumTasks"] == "2" and jobs[0]["State"] == "COMPLETED", jobs
    log = (work / "logs" / "diffusion" / "fc-mnist7" / "1.0.log").read_text()
    assert "srun --ntasks=2" in log, log[-3000:]
    res = load_result(work / target)
    assert res["processes"] == 2 and res["spectrum_path"] == "matrix-free"
    assert res["trace"] == pytest.approx(exact["trace"], rel=1e-8)  # float32-stored in exact
    assert res["rank"] == exact["rank"] > 0
    r = res["rank"]
    np.testing.assert_allclose(res["eigenvalues"][:r], exact["eigenvalues"][:r], rtol=1e-6)
