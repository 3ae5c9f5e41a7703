"""A throw-away SLURM cluster for the tests: munge, MariaDB, slurmdbd, slurmctld and one slurmd on localhost, with
partitions `cpu` and `gpu`, all state under one folder and on free ports (another test run may hold the usual ones).
Debian packages: slurm-wlm, slurmdbd, munge, mariadb-server."""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

PROGRAMS = ("munged", "mungekey", "mariadbd", "mariadb-install-db", "slurmdbd", "slurmctld", "slurmd", "sbatch")
CLUSTER_NAME = "dipbench"
# More CPUs than the machine's (SlurmdParameters=config_overrides), so that every ready job of a small test grid runs
# at once: they are short, and each waits for a status check, not for a core.
NODE_CPUS = 8


class ClusterUnavailable(RuntimeError):
    """The cluster cannot run here: a program is missing or a daemon did not start (the message says which)."""


@dataclass
class Cluster:
    """A running cluster: `env` points the SLURM commands at it (SLURM_CONF)."""

    root: Path
    env: dict[str, str]
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def command(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """A SLURM client command against this cluster."""
        return subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=timeout)

    def stop(self) -> None:
        """Cancel every job, then stop the daemons, the last started first; SIGKILL what does not stop in 10 s, and
        any process of a job still alive (one whose parent died before it, which no SLURM plugin here tracks)."""
        if "slurmd" in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.command("scancel", "--full", f"--user={getpass.getuser()}")
                deadline = time.monotonic() + 30
                while self.command("squeue", "--noheader").stdout.strip() and time.monotonic() < deadline:
                    time.sleep(0.5)
        for process in reversed(list(self.processes.values())):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)
        self.processes.clear()
        for pid in self.leftovers():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def leftovers(self) -> list[int]:
        """Processes started by this cluster: they have its SLURM_CONF in their environment."""
        marker = f"SLURM_CONF={self.env['SLURM_CONF']}".encode()
        pids = []
        for entry in Path("/proc").iterdir():
            with contextlib.suppress(OSError):
                if entry.name.isdigit() and marker in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
        return pids


def missing_programs() -> list[str]:
    return [name for name in PROGRAMS if shutil.which(name) is None]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(what: str, ready: Callable[[], bool], process: subprocess.Popen, log: Path, timeout: float) -> None:
    """Wait until `ready()`, or fail naming `what` and the end of its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if process.poll() is not None:
            break
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
    raise ClusterUnavailable(f"{what} did not start (log {log}):\n{tail}")


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def write_configs(root: Path, ports: dict[str, int]) -> Path:
    """slurm.conf and slurmdbd.conf (in the same folder, where slurmdbd looks for it); returns slurm.conf."""
    etc, state, log = root / "etc", root / "state", root / "log"
    for folder in (etc, state / "ctld", state / "d"):
        folder.mkdir(parents=True, exist_ok=True)
    memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    auth = f"AuthType=auth/munge\nAuthInfo=socket={root / 'munge' / 'socket'}\n"
    (etc / "slurm.conf").write_text(
        f"ClusterName={CLUSTER_NAME}\nSlurmctldHost=localhost\n{auth}CredType=cred/munge\n"
        f"SlurmctldPort={ports['slurmctld']}\nSlurmdPort={ports['slurmd']}\n"
        "SlurmUser=root\nSlurmdUser=root\n"
        f"StateSaveLocation={state / 'ctld'}\nSlurmdSpoolDir={state / 'd'}\n"
        f"SlurmctldPidFile={state / 'slurmctld.pid'}\nSlurmdPidFile={state / 'slurmd.pid'}\n"
        f"SlurmctldLogFile={log / 'slurmctld.log'}\nSlurmdLogFile={log / 'slurmd.log'}\n"
        "ProctrackType=proctrack/pgid\nTaskPlugin=task/none\nJobAcctGatherType=jobacct_gather/none\n"
        "MpiDefault=none\nSwitchType=switch/none\nSchedulerType=sched/backfill\n"
        "SelectType=select/cons_tres\nSelectTypeParameters=CR_Core\nSlurmdParameters=config_overrides\n"
        "ReturnToService=2\nMinJobAge=300\nKillWait=5\nInactiveLimit=0\nMailProg=/bin/true\n"
        f"AccountingStorageType=accounting_storage/slurmdbd\nAccountingStorageHost=localhost\n"
        "AccountingStoreFlags=job_comment\n"
        f"AccountingStoragePort={ports['slurmdbd']}\nAccountingStoragePass={root / 'munge' / 'socket'}\n"
        "JobCompType=jobcomp/none\n"
        f"NodeName=localhost NodeAddr=127.0.0.1 CPUs={NODE_CPUS} RealMemory={memory_mb} State=UNKNOWN\n"
        "PartitionName=cpu Nodes=localhost Default=YES MaxTime=INFINITE State=UP\n"
        "PartitionName=gpu Nodes=localhost MaxTime=INFINITE State=UP\n"
    )
    dbd = etc / "slurmdbd.conf"
    dbd.write_text(
        f"{auth}DbdHost=localhost\nDbdPort={ports['slurmdbd']}\nSlurmUser=root\n"
        f"LogFile={log / 'slurmdbd.log'}\nPidFile={state / 'slurmdbd.pid'}\n"
        "StorageType=accounting_storage/mysql\nStorageHost=127.0.0.1\n"
        f"StoragePort={ports['mariadb']}\nStorageUser=root\nStorageLoc=slurm_acct_db\n"
    )
    dbd.chmod(0o600)
    return etc / "slurm.conf"


def start_cluster(root: Path) -> Cluster:
    """Start every daemon under `root` and wait until the node takes jobs; raises ClusterUnavailable."""
    if os.geteuid() != 0:
        raise ClusterUnavailable("slurmd runs jobs as their users: it needs root")
    missing = missing_programs()
    if missing:
        raise ClusterUnavailable(
            f"needs {', '.join(missing)} (Debian: apt-get install slurm-wlm slurmdbd munge mariadb-server)"
        )
    ports = {name: free_port() for name in ("slurmctld", "slurmd", "slurmdbd", "mariadb")}
    (root / "log").mkdir(parents=True)
    munge = root / "munge"
    munge.mkdir(mode=0o700)
    conf = write_configs(root, ports)
    cluster = Cluster(root, {**os.environ, "SLURM_CONF": str(conf)})
    try:
        _start_daemons(cluster, ports)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _start_daemons(cluster: Cluster, ports: dict[str, int]) -> None:
    root, log = cluster.root, cluster.root / "log"

    def launch(name: str, *command: str) -> subprocess.Popen:
        with open(log / f"{name}.out", "w") as output:
            process = subprocess.Popen(command, env=cluster.env, stdout=output, stderr=subprocess.STDOUT)
        cluster.processes[name] = process
        return process

    munge = root / "munge"
    subprocess.run(["mungekey", "--create", "--keyfile", munge / "key"], check=True, capture_output=True)
    process = launch(
        "munged",
        "munged", "--foreground", "--force", f"--key-file={munge / 'key'}", f"--socket={munge / 'socket'}",
        f"--pid-file={munge / 'pid'}", f"--log-file={log / 'munged.log'}", f"--seed-file={munge / 'seed'}",
    )  # fmt: skip
    wait_for("munged", (munge / "socket").exists, process, log / "munged.log", 20)

    data = root / "mariadb"
    install = subprocess.run(
        ["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=root", "--skip-test-db"],
        capture_output=True,
        text=True,
    )
    if install.returncode != 0:
        raise ClusterUnavailable(f"mariadb-install-db failed: {install.stderr[-2000:]}")
    process = launch(
        "mariadb",
        "mariadbd", "--no-defaults", f"--datadir={data}", "--user=root", "--skip-grant-tables",
        "--bind-address=127.0.0.1", f"--port={ports['mariadb']}", f"--socket={data / 'socket'}",
        f"--pid-file={data / 'pid'}", "--skip-log-bin",
    )  # fmt: skip
    wait_for("mariadbd", lambda: port_open(ports["mariadb"]), process, log / "mariadb.out", 60)

    process = launch("slurmdbd", "slurmdbd", "-D")
    wait_for("slurmdbd", lambda: port_open(ports["slurmdbd"]), process, log / "slurmdbd.log", 60)
    cluster.command("sacctmgr", "-i", "add", "cluster", CLUSTER_NAME)

    process = launch("slurmctld", "slurmctld", "-D", "-i")
    wait_for("slurmctld", lambda: cluster.command("scontrol", "ping").returncode == 0, process,
             log / "slurmctld.log", 60)  # fmt: skip
    process = launch("slurmd", "slurmd", "-D", "-N", "localhost")

    def node_idle() -> bool:
        states = cluster.command("sinfo", "--noheader", "--format=%t").stdout.split()
        return bool(states) and all(state == "idle" for state in states)

    wait_for("slurmd", node_idle, process, log / "slurmd.log", 60)
