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

CGROUP = Path("/sys/fs/cgroup")


def usable_cores(cgroup: Path | None = None) -> int:
    """The cores this process may run on at once (at least 1): its CPU affinity where the system tells it, else
    the machine's cores, and no more than its cgroup's CPU quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``; in
    ``cgroup``, by default :data:`CGROUP`), rounded up."""
    cores = cores_in_set()
    quota = _quota(CGROUP if cgroup is None else cgroup)
    return max(1, min(cores, math.ceil(quota)) if quota else cores)


def cores_in_set() -> int:
    """The cores of this process's CPU affinity, where the system tells it; else the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _quota(cgroup: Path) -> float | None:
    """Cores' worth of CPU time per second the cgroup may use, or None when it sets no limit or cannot be read."""
    try:  # v2: "max 100000" (no limit) or "200000 100000" (two cores' worth)
        quota, period = (cgroup / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError, ZeroDivisionError):
        pass
    try:  # v1: -1 for no limit
        quota = int((cgroup / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((cgroup / "cpu" / "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None
