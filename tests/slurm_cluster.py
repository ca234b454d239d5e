"""A throwaway single-node SLURM cluster on localhost, for tests/test_slurm.py.

Debian's ``slurm-wlm`` and ``munge`` (``.ci/install-slurm`` installs them) started by hand, as
root, without systemd: ``munged`` as user munge on a private socket, then ``slurmctld`` and
``slurmd`` with a ``slurm.conf`` written into a fresh directory under /tmp. Nothing touches
/etc/slurm or the default munge socket, and free TCP ports are picked, so a real cluster
configuration on the same machine is left alone.

The node advertises one fake GPU (``Gres=gpu:1`` backed by ``/dev/null``) so jobs that ask for
``--gpus=1`` are scheduled; they still run on the CPU.

Usage::

    with LocalSlurm() as cluster:          # raises SlurmUnavailable when it cannot start
        env = cluster.env()                # SLURM_CONF for sbatch/squeue/srun
        subprocess.run(["sbatch", ...], env=env)

Run ``python tests/slurm_cluster.py`` to start one, print ``sinfo`` and stop it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
INSTALL_SCRIPT = REPO / ".ci" / "install-slurm"
CLIENTS = ("sbatch", "srun", "squeue", "scancel", "sinfo", "scontrol", "sacct", "sacctmgr")
SQUEUE_FIELDS = (
    "JobID",
    "State",
    "Comment",
    "tres-per-job",
    "tres-alloc",
    "MinMemory",
    "TimeLimit",
)
ACTIVE_STATES = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED"}
BINARIES = ("slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "srun", "munged")


class SlurmUnavailable(RuntimeError):
    """SLURM cannot be installed or started here; the message says why (tests skip with it)."""


def _which(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for d in ("/usr/sbin", "/usr/bin") if (p := Path(d) / name).exists()), None
    )


def ensure_installed(install: bool = True) -> None:
    """Make sure the SLURM and munge binaries exist, running .ci/install-slurm if allowed."""
    missing = [b for b in BINARIES if _which(b) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        raise SlurmUnavailable(
            f"SLURM binaries {missing} are missing and installing them needs root; "
            "run `sudo bash .ci/install-slurm` (Debian: apt-get install slurm-wlm munge)"
        )
    if not install or shutil.which("apt-get") is None:
        raise SlurmUnavailable(f"SLURM binaries {missing} are missing and apt-get is unavailable")
    proc = subprocess.run(
        ["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=600
    )
    if proc.returncode != 0:
        raise SlurmUnavailable(
            f"`bash .ci/install-slurm` failed ({proc.returncode}): {proc.stderr[-2000:]}"
        )
    missing = [b for b in BINARIES if _which(b) is None]
    if missing:
        raise SlurmUnavailable(f"after .ci/install-slurm, still missing {missing}")


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _physical_memory_mb() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie still answers kill(0); look at its state
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class LocalSlurm:
    """Start munged, slurmctld and slurmd for one node on 127.0.0.1; stop them on exit.

    ``cpus`` defaults to the machine's (``os.cpu_count()``); ``mem_mb`` to 80 % of physical
    memory (below it, or slurmd drains the node); ``def_mem_per_cpu`` keeps a job that asks for
    no memory from taking the whole node.
    """

    def __init__(
        self,
        cpus: int | None = None,
        mem_mb: int | None = None,
        def_mem_per_cpu: int = 1000,
        gpus: int = 1,
        partition: str = "debug",
        keep: bool = False,
    ) -> None:
        self.cpus = cpus or os.cpu_count() or 1
        self.mem_mb = mem_mb or int(_physical_memory_mb() * 0.8)
        self.def_mem_per_cpu = def_mem_per_cpu
        self.gpus = gpus
        self.partition = partition
        self.keep = keep
        self.host = socket.gethostname().split(".")[0]
        self.root: Path | None = None
        self._started: list[tuple[str, Path]] = []

    # -- paths ---------------------------------------------------------------------------------
    @property
    def conf(self) -> Path:
        assert self.root is not None
        return self.root / "slurm.conf"

    def path(self, name: str) -> Path:
        assert self.root is not None
        return self.root / name

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """Environment in which sbatch/squeue/srun talk to this cluster.

        SLURM_CONF names our slurm.conf, and PATH starts with :meth:`write_shims`' directory:
        snakemake-executor-plugin-slurm-jobstep (0.6) removes SLURM_CONF from the environment
        of the ``srun`` it runs inside each job, so that srun would look for
        /etc/slurm/slurm.conf. On a real cluster the config is there; here the shims put
        SLURM_CONF back.
        """
        env = dict(os.environ if base is None else base)
        env["SLURM_CONF"] = str(self.conf)
        env["PATH"] = f"{self.path('bin')}{os.pathsep}{env.get('PATH', '')}"
        for var in ("SLURM_JOB_ID", "SLURM_JOBID", "SLURM_CPUS_ON_NODE"):
            env.pop(var, None)
        return env

    # -- configuration -------------------------------------------------------------------------
    def slurm_conf(self, ctld_port: int, slurmd_port: int) -> str:
        r = self.root
        gres = f" Gres=gpu:{self.gpus}" if self.gpus else ""
        return "\n".join(
            [
                "ClusterName=sgdvi-test",
                f"SlurmctldHost={self.host}(127.0.0.1)",
                f"SlurmctldPort={ctld_port}",
                f"SlurmdPort={slurmd_port}",
                "SlurmUser=root",
                "SlurmdUser=root",
                "AuthType=auth/munge",
                "CredType=cred/munge",
                f"AuthInfo=socket={r}/munge/munge.socket",
                f"StateSaveLocation={r}/state",
                f"SlurmdSpoolDir={r}/spool",
                f"SlurmctldPidFile={r}/slurmctld.pid",
                f"SlurmdPidFile={r}/slurmd.pid",
                f"SlurmctldLogFile={r}/slurmctld.log",
                f"SlurmdLogFile={r}/slurmd.log",
                "SlurmctldDebug=info",
                "SlurmdDebug=info",
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "MpiDefault=none",
                "SchedulerType=sched/backfill",
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_Core_Memory",
                f"DefMemPerCPU={self.def_mem_per_cpu}",
                # use the node definition below as given, whatever the hardware reports
                "SlurmdParameters=config_overrides",
                "ReturnToService=2",
                "AccountingStorageType=accounting_storage/none",
                "JobAcctGatherType=jobacct_gather/none",
                "JobCompType=jobcomp/none",
                # finished jobs stay visible to `squeue --states=all` for 5 minutes
                "MinJobAge=300",
                "KillWait=5",
                "InactiveLimit=0",
                "GresTypes=gpu",
                f"NodeName={self.host} NodeAddr=127.0.0.1 CPUs={self.cpus} "
                f"RealMemory={self.mem_mb}{gres} State=UNKNOWN",
                f"PartitionName={self.partition} Nodes={self.host} Default=YES "
                "MaxTime=INFINITE State=UP",
                "",
            ]
        )

    def gres_conf(self) -> str:
        # File= is required: without it slurmd reports no GPU and the node drains.
        return "".join(f"NodeName={self.host} Name=gpu File=/dev/null\n" for _ in range(self.gpus))

    def write_shims(self) -> None:
        """``bin/<client>`` scripts that run the real SLURM client with our SLURM_CONF."""
        bindir = self.path("bin")
        bindir.mkdir(exist_ok=True)
        for name in CLIENTS:
            real = _which(name)
            if real is None:
                continue
            shim = bindir / name
            shim.write_text(f'#!/bin/sh\nSLURM_CONF="{self.conf}" exec {real} "$@"\n')
            shim.chmod(0o755)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self, timeout: float = 60) -> LocalSlurm:
        if os.geteuid() != 0:
            raise SlurmUnavailable("starting slurmctld/slurmd/munged by hand needs root")
        ensure_installed()
        try:
            munge = pwd.getpwnam("munge")
        except KeyError as err:
            raise SlurmUnavailable("user munge missing: reinstall the munge package") from err
        if not Path("/etc/munge/munge.key").exists():
            raise SlurmUnavailable("/etc/munge/munge.key missing: run `mungekey --create`")

        self.root = Path(tempfile.mkdtemp(prefix="sgdvi-slurm-"))
        os.chmod(self.root, 0o755)
        for d in ("state", "spool"):
            self.path(d).mkdir()
        mdir = self.path("munge")
        mdir.mkdir()
        os.chmod(mdir, 0o755)  # munged requires execute permission for all on the socket dir
        os.chown(mdir, munge.pw_uid, munge.pw_gid)
        ctld_port, slurmd_port = _free_ports(2)
        self.conf.write_text(self.slurm_conf(ctld_port, slurmd_port))
        self.path("gres.conf").write_text(self.gres_conf())
        self.write_shims()
        try:
            self._start_munged(munge)
            self._run_daemon("slurmctld", ["slurmctld", "-f", str(self.conf)], "slurmctld.pid")
            self._run_daemon("slurmd", ["slurmd", "-f", str(self.conf)], "slurmd.pid")
            self.wait_idle(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_munged(self, munge: pwd.struct_passwd) -> None:
        m = self.path("munge")
        cmd = [
            _which("munged") or "munged",
            f"--socket={m}/munge.socket",
            f"--pid-file={m}/munged.pid",
            f"--log-file={m}/munged.log",
            f"--seed-file={m}/munged.seed",
        ]

        def demote() -> None:
            os.setgid(munge.pw_gid)
            os.setgroups([])
            os.setuid(munge.pw_uid)

        proc = subprocess.run(
            cmd, preexec_fn=demote, capture_output=True, text=True, timeout=30, cwd=m
        )
        if proc.returncode != 0:
            raise SlurmUnavailable(f"munged failed to start: {proc.stderr.strip()}")
        self._started.append(("munged", m / "munged.pid"))
        self._wait_for(lambda: (m / "munge.socket").exists(), 10, "munged socket")

    def _run_daemon(self, name: str, args: list[str], pidfile: str) -> None:
        args = [_which(args[0]) or args[0], *args[1:]]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=30, env=self.env())
        self._started.append((name, self.path(pidfile)))
        if proc.returncode != 0:
            raise SlurmUnavailable(
                f"{name} failed to start ({proc.returncode}): {proc.stderr.strip()}\n" + self.logs()
            )

    def _wait_for(self, ok, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ok():
                return
            time.sleep(0.25)
        raise SlurmUnavailable(
            f"timed out after {timeout:.0f} s waiting for {what}\n" + self.logs()
        )

    def node_state(self) -> str:
        proc = subprocess.run(
            [_which("sinfo") or "sinfo", "-h", "-o", "%t"],
            capture_output=True,
            text=True,
            timeout=10,
            env=self.env(),
        )
        return proc.stdout.strip() if proc.returncode == 0 else ""

    def wait_idle(self, timeout: float = 60) -> None:
        """Wait until sinfo reports the node idle (a drained node fails with slurmd's log)."""

        def idle() -> bool:
            for name, pidfile in self._started:
                pid = _read_pid(pidfile)  # None while the daemon has not written it yet
                if pid is not None and not _alive(pid):
                    raise SlurmUnavailable(f"{name} exited\n{self.logs()}")
            state = self.node_state()
            if state.startswith(("drain", "drng", "down")) and "*" not in state:
                raise SlurmUnavailable(f"node state {state!r}\n" + self.logs())
            return state == "idle"

        self._wait_for(idle, timeout, "the node to become idle")

    def logs(self, tail: int = 4000) -> str:
        """The daemons' log tails, for failure messages."""
        if self.root is None:
            return ""
        out = []
        for name in ("slurmctld.log", "slurmd.log", "munge/munged.log"):
            p = self.path(name)
            if p.exists():
                out.append(f"--- {p}\n{p.read_text(errors='replace')[-tail:]}")
        return "\n".join(out)

    def squeue(self, fields: tuple[str, ...] = SQUEUE_FIELDS) -> list[dict[str, str]]:
        """Every job this cluster still remembers (MinJobAge=300 s): ``{field: value}`` each.

        Fields are squeue ``--Format`` names; the default ones are the job id, its state, its
        comment (the Snakemake plugin writes ``rule_<name>_wildcards_...`` there), the TRES it
        asked for per job (``gres:gpu:1`` for ``--gpus=1``), the TRES it was given
        (``cpu=1,mem=2000M,...,gres/gpu=1``), its memory request and time limit.
        """
        fmt = ",".join(f"{f}:|" for f in fields)
        proc = subprocess.run(
            [_which("squeue") or "squeue", "--states=all", "-h", "-O", fmt],
            capture_output=True,
            text=True,
            timeout=30,
            env=self.env(),
        )
        if proc.returncode != 0:
            raise RuntimeError(f"squeue failed: {proc.stderr}")
        rows = []
        for line in proc.stdout.splitlines():
            if line.strip():
                values = [v.strip() for v in line.split("|")]
                rows.append(dict(zip(fields, values, strict=False)))
        return rows

    def job_gres(self, job_id: str) -> str:
        """The generic resources SLURM allocated to a job (``gpu:1``), ``""`` for none."""
        proc = subprocess.run(
            [_which("scontrol") or "scontrol", "show", "job", "-d", str(job_id)],
            capture_output=True,
            text=True,
            timeout=30,
            env=self.env(),
        )
        if proc.returncode != 0:
            raise RuntimeError(f"scontrol show job {job_id} failed: {proc.stderr}")
        for word in proc.stdout.split():
            if word.startswith("JOB_GRES="):
                value = word.removeprefix("JOB_GRES=")
                return "" if value == "(null)" else value
        return ""

    def cancel_all(self, timeout: float = 30) -> None:
        """scancel every job of this cluster and wait until none is running."""
        if self.root is None or not any(name == "slurmctld" for name, _ in self._started):
            return
        env = self.env()
        subprocess.run(
            [_which("scancel") or "scancel", "--user", pwd.getpwuid(os.geteuid()).pw_name],
            capture_output=True,
            timeout=30,
            env=env,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                active = [j for j in self.squeue(("JobID", "State")) if j["State"] in ACTIVE_STATES]
            except (RuntimeError, subprocess.TimeoutExpired):
                return
            if not active:
                return
            time.sleep(0.5)

    def stop(self) -> None:
        """Cancel all jobs, stop the daemons by their pid files (slurmd, slurmctld, munged),
        remove the state directory."""
        try:
            self.cancel_all()
        except Exception:  # stopping the daemons must go on whatever squeue says
            pass
        for _name, pidfile in reversed(self._started):
            pid = _read_pid(pidfile)
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + 15
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        self._started.clear()
        if self.root is not None and not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalSlurm:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    t0 = time.monotonic()
    with LocalSlurm() as cluster:
        print(f"cluster up in {time.monotonic() - t0:.1f} s, SLURM_CONF={cluster.conf}")
        print(subprocess.run(["sinfo"], env=cluster.env(), capture_output=True, text=True).stdout)
        out = subprocess.run(
            [
                "srun",
                "--gpus=1",
                "-n1",
                "bash",
                "-c",
                "echo on $(hostname) gpus=$SLURM_GPUS_ON_NODE cuda=$CUDA_VISIBLE_DEVICES",
            ],
            env=cluster.env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        print(out.stdout, out.stderr)
