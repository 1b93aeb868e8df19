"""The CPU cores this process may use, which is what vcm divides between parallel points and their threads.

``os.cpu_count()`` counts the machine's cores: under a CPU set (``taskset``, a Slurm job's ``--cpus-per-task``,
``docker --cpuset-cpus``, Kubernetes' CPU manager) or a CPU quota (``docker --cpus``, a Kubernetes limit) a
process may use fewer, and threads beyond them only wait on each other (one core given two threads: a HiNeRV
training step 1.4× as long on carphone).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from vcm.cgroups import own_folders, read_int


def usable_cores(cgroup: Path | None = None, membership: Path | None = None) -> int:
    """The cores this process may run on at once (at least 1): its CPU affinity where the system tells it, else
    the machine's cores, and no more than its cgroups' CPU quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``; of its
    own cgroup, named in ``membership``, and those above it, under the mount ``cgroup``; by default
    :data:`vcm.cgroups.MEMBERSHIP` and :data:`vcm.cgroups.CGROUP`), rounded up."""
    cores = cores_in_set()
    quota = _quota(cgroup, membership)
    return max(1, min(cores, math.ceil(quota)) if quota else cores)


def cores_in_set() -> int:
    """The cores of this process's CPU affinity, where the system tells it; else the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _quota(cgroup: Path | None, membership: Path | None) -> float | None:
    """Cores' worth of CPU time per second this process's cgroups let it use (the smallest quota of its own cgroup and
    those above it, under the mount ``cgroup``), or None where none sets a limit or none can be read."""
    quotas = []
    for folder in own_folders("", cgroup, membership):  # v2: "max 100000" (no limit) or "200000 100000" (two cores)
        try:
            quota, period = (folder / "cpu.max").read_text().split()[:2]
            if quota != "max":
                quotas.append(int(quota) / int(period))
        except (OSError, ValueError, ZeroDivisionError):
            pass
    for folder in own_folders("cpu", cgroup, membership):  # v1: -1 for no limit
        quota, period = read_int(folder / "cpu.cfs_quota_us"), read_int(folder / "cpu.cfs_period_us")
        if quota and period and quota > 0 and period > 0:
            quotas.append(quota / period)
    return min(quotas, default=None)
