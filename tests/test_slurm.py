"""The Slurm profile against a real single-node Slurm started on localhost for the test.

Needs root and Debian's packages (``.ci/run`` installs them): ``slurmctld slurmd slurm-client
munge``. The test starts munged, slurmctld and slurmd with a configuration of its own (no
systemd, no cgroups, no accounting database), submits the data target of the test config through
``profiles/slurm-cpu``, checks that the jobs ran under Slurm and that the outputs equal a local
run's, and stops only the daemons it started (by their pid files). ``-m 'not slurm'`` skips it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from .conftest import REPO
from .test_workflow import SNAKEMAKE, _test_config

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.workflow]

DAEMONS = ("munged", "slurmctld", "slurmd")


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    absent = [d for d in (*DAEMONS, "sbatch", "squeue", "mungekey") if shutil.which(d) is None]
    return (
        f"missing {absent} (apt-get install slurmctld slurmd slurm-client munge)"
        if absent
        else None
    )


SLURM_CONF = """\
ClusterName=llmrec-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
AuthType=auth/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={base}/state
SlurmdSpoolDir={base}/spool
SlurmctldPidFile={base}/slurmctld.pid
SlurmdPidFile={base}/slurmd.pid
SlurmctldLogFile={base}/slurmctld.log
SlurmdLogFile={base}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={base}/jobcomp.log
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
MinJobAge=120
ReturnToService=2
MpiDefault=none
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} State=UNKNOWN
PartitionName=test Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A running single-node Slurm; yields the environment that points clients at it."""
    reason = _missing()
    if reason:
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool"):
        (base / sub).mkdir()
    host = socket.gethostname().split(".")[0]
    conf = base / "slurm.conf"
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20 // 2
    conf.write_text(
        SLURM_CONF.format(
            host=host,
            base=base,
            cpus=os.cpu_count(),
            memory=memory,
            ctld_port=_free_port(),
            d_port=_free_port(),
        )
    )
    env = os.environ | {"SLURM_CONF": str(conf)}
    # Job steps (srun inside a job) read the default path whatever SLURM_CONF said at
    # submission: point it at ours for the test's lifetime, never over an existing one.
    default_conf = Path("/etc/slurm/slurm.conf")
    if default_conf.exists() or default_conf.is_symlink():
        pytest.skip(f"{default_conf} exists: this machine has a Slurm of its own")
    munge_dir = Path(tempfile.mkdtemp(prefix="llmrec-test-munge-", dir="/run"))
    pids = [munge_dir / "munged.pid", base / "slurmctld.pid", base / "slurmd.pid"]
    try:
        default_conf.parent.mkdir(parents=True, exist_ok=True)
        default_conf.symlink_to(conf)
        # munge: its own key, socket and pid file, run as the munge user. munged refuses
        # paths the munge user cannot reach, so not under pytest's (root-only) tmp.
        key, socket_path = munge_dir / "munge.key", munge_dir / "munge.socket"
        subprocess.run(["mungekey", "--create", "--keyfile", str(key)], check=True)
        shutil.chown(munge_dir, "munge", "munge")
        shutil.chown(key, "munge", "munge")
        os.chmod(munge_dir, 0o755)  # the socket must be reachable by every user
        os.chmod(key, 0o600)
        munge_pid = munge_dir / "munged.pid"
        done = subprocess.run(
            [
                "runuser",
                "-u",
                "munge",
                "--",
                "munged",
                "--key-file",
                str(key),
                "--socket",
                str(socket_path),
                "--pid-file",
                str(munge_pid),
                "--log-file",
                str(munge_dir / "munged.log"),
                "--seed-file",
                str(munge_dir / "munged.seed"),
            ],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"munged did not start: {done.stderr}")
        # Slurm's munge plugin finds the socket through its AuthInfo setting.
        conf.write_text(conf.read_text() + f"AuthInfo=socket={socket_path}\n")
        subprocess.run(["slurmctld", "-f", str(conf)], check=True, env=env)
        subprocess.run(["slurmd", "-f", str(conf)], check=True, env=env)
        for _ in range(60):
            done = subprocess.run(
                ["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, env=env
            )
            if done.stdout.strip() in ("idle", "mix", "alloc"):
                break
            time.sleep(0.5)
        else:
            raise RuntimeError(
                f"the Slurm node did not come up: {done.stdout}{done.stderr}\n"
                + (base / "slurmctld.log").read_text()[-2000:]
            )
        yield env, base
    finally:
        for pid_file in reversed(pids):
            if pid_file.exists():
                try:
                    os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)
                except (ProcessLookupError, ValueError):
                    pass
        time.sleep(1)
        shutil.rmtree(munge_dir, ignore_errors=True)
        default_conf.unlink(missing_ok=True)


def _run(args: list[str], cwd: Path, env: dict, limit: float) -> subprocess.CompletedProcess:
    """Snakemake bounded in time: a hung run ignores SIGTERM while jobs run, so SIGINT."""
    proc = subprocess.Popen(
        [*SNAKEMAKE, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out, _ = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        raise AssertionError(f"snakemake did not finish within {limit} s:\n{out[-4000:]}") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")


def test_the_slurm_profile_runs_jobs_under_slurm_with_local_outputs(slurm, tmp_path):
    env, base = slurm
    target = "results/tables/datasets.csv"
    local, cluster = tmp_path / "local", tmp_path / "cluster"
    for work in (local, cluster):
        work.mkdir()
    config = _test_config(tmp_path)
    common = [target, "--configfile", str(config), "--snakefile", str(REPO / "Snakefile")]
    done = _run(["--cores", "2", *common, "--directory", str(local)], REPO, env, 120)
    assert done.returncode == 0, done.stdout[-4000:]
    # As docs/cluster.md says: the cluster's names in the environment (an empty account: the
    # plugin's guess), started from elsewhere with the run folder as --directory.
    cluster_env = env | {"LLMREC_SLURM_ACCOUNT": "", "LLMREC_CPU_PARTITION": "test"}
    done = _run(
        [
            "--profile",
            str(REPO / "profiles" / "slurm-cpu"),
            *common,
            "--directory",
            str(cluster),
            "--slurm-init-seconds-before-status-checks",
            "2",
            "--slurm-keep-successful-logs",
        ],
        tmp_path,
        cluster_env,
        150,
    )
    assert done.returncode == 0, done.stdout[-4000:]
    # Slurm ran them: slurmctld's job completion log lists one completed job per job log the
    # plugin wrote in the run folder (.snakemake/slurm_logs/rule_<rule>/<wildcards>/<job id>.log).
    completed = [line for line in (base / "jobcomp.log").read_text().splitlines() if line]
    slurm_logs = cluster / ".snakemake" / "slurm_logs"
    logs = list(slurm_logs.rglob("*.log"))
    job_ids = {int(p.stem) for p in logs}
    assert len(completed) == len(job_ids) >= 3
    assert all("JobState=COMPLETED" in line for line in completed)
    assert {int(line.split()[0].removeprefix("JobId=")) for line in completed} == job_ids
    # Parsing and filtering went to Slurm; the downloads, statistics and the table are
    # localrules (compute nodes often have no internet; seconds of work need no job).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cluster", "config.yaml", "local"]
    rules = {p.relative_to(slurm_logs).parts[0] for p in logs}
    assert rules == {"rule_parse_dataset", "rule_filter_interactions"}
    # The same data as the local run (the table's provenance columns aside).
    import pyarrow.parquet as pq

    for rel in (
        "results/data/ml-100k/filtered/interactions.parquet",
        "results/data/synthetic-news/canonical/impressions.parquet",
    ):
        assert pq.read_table(cluster / rel).equals(pq.read_table(local / rel)), rel
    for rel in ("results/data/ml-100k/stats.json", "results/data/synthetic-news/stats.json"):
        assert (cluster / rel).read_text() == (local / rel).read_text(), rel
    assert (cluster / target).read_text() == (local / target).read_text()
