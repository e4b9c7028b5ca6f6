"""A one-node Slurm cluster on this machine for the tests: munged, slurmctld and slurmd on localhost with a
generated slurm.conf (Debian: slurmd slurmctld slurm-client munge; `.ci/run` installs them). Root only
(slurmd runs jobs as their users). Starts in ~5 s; clients find it through SLURM_CONF."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from pg_server import free_port
import contextlib

CONF = """ClusterName=pggtest
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
MinJobAge=600
KillWait=5
NodeName={host} CPUs={cpus} RealMemory=2000 State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


class SlurmCluster:
    def __init__(self) -> None:
        missing = [b for b in ("slurmctld", "slurmd", "sbatch", "scontrol", "munged") if not shutil.which(b)]
        if missing:
            raise FileNotFoundError(
                f"no {', '.join(missing)} (Debian: apt-get install slurmd slurmctld slurm-client munge)"
            )
        if os.geteuid() != 0:
            raise PermissionError("a local Slurm cluster needs root")
        self.dir = Path(tempfile.mkdtemp(prefix="pgg-slurm-"))
        (self.dir / "state").mkdir()
        (self.dir / "spool").mkdir()
        conf = self.dir / "slurm.conf"
        conf.write_text(
            CONF.format(
                host=socket.gethostname().split(".")[0],
                d=self.dir,
                ctld_port=free_port(),
                d_port=free_port(),
                cpus=os.cpu_count() or 1,
            )
        )
        self.conf = conf
        self.env = dict(os.environ, SLURM_CONF=str(conf))
        self._munge()
        for daemon in ("slurmctld", "slurmd"):
            subprocess.run([daemon, "-f", str(conf)], env=self.env, check=True, timeout=30)
        end = time.monotonic() + 30
        while time.monotonic() < end:
            out = subprocess.run(["sinfo", "-h", "-o", "%T"], env=self.env, capture_output=True, text=True)
            if out.stdout.strip() in ("idle", "mixed", "allocated"):
                return
            time.sleep(0.3)
        raise RuntimeError(f"the test Slurm cluster did not come up: {(self.dir / 'slurmctld.log').read_text()[-800:]}")

    def _munge(self) -> None:
        if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode == 0:
            return
        key = Path("/etc/munge/munge.key")
        if not key.exists():
            subprocess.run(["mungekey", "--create"], check=True, timeout=30)
            shutil.chown(key, "munge", "munge")
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        subprocess.run(["runuser", "-u", "munge", "--", "munged"], check=True, timeout=30)

    def stop(self) -> None:
        for name in ("slurmd", "slurmctld"):
            pid_file = self.dir / f"{name}.pid"
            if pid_file.exists():
                with contextlib.suppress(OSError, ValueError):
                    os.kill(int(pid_file.read_text().strip()), 15)
        time.sleep(0.5)
        shutil.rmtree(self.dir, ignore_errors=True)
