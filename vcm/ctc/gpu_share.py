"""The CUDA GPUs of this machine shared among the points of a parallel ``vcm ctc run`` (``--jobs N``).

A point's device ``auto`` or ``cuda`` means "a GPU", which torch reads as ``cuda:0``: on a machine with several
GPUs every worker trained on the first while the others stood idle, and N fits shared its memory. Each point now
starts on the GPU that the fewest running points use (the lowest index among equals), so up to one point per GPU
runs on each. A point given ``cuda:N`` keeps that GPU, and counts on it.
"""

from __future__ import annotations

from collections import Counter

from vcm import progress
from vcm.device import device_kind
from vcm.words import counted


def _any_gpu(device: str) -> bool:
    """Whether a point's device leaves the GPU to vcm: ``auto`` (on a machine with CUDA) or ``cuda``."""
    return device_kind(device) in (("auto", None), ("cuda", None))


class GpuShare:
    """Which GPU each running point uses. ``place(spec)`` → the spec's device for its worker; ``release(spec)``
    once it has finished (or lost its worker)."""

    def __init__(self, count: int):
        self.count = count
        self.held: dict[int, int] = {}  # id(spec) of each running point on a GPU → its GPU

    @classmethod
    def for_points(cls, specs: list[dict], jobs: int) -> GpuShare | None:
        """The share for ``jobs`` parallel workers running ``specs``; None where there is nothing to share (one
        worker, one GPU or none, or every point on a device of its own choosing)."""
        if jobs < 2 or not any(_any_gpu(s.get("device", "auto")) for s in specs):
            return None
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count < 2:
            return None
        progress.log(f"points on a GPU spread over this machine's {counted(count, 'CUDA GPU')} (cuda:0 to "
                     f"cuda:{count - 1}), each starting on the one the fewest running points use")
        return cls(count)

    def place(self, spec: dict) -> str:
        """The device ``spec`` runs on: the least busy GPU for ``auto``/``cuda``, its own otherwise."""
        device = spec.get("device", "auto")
        kind, index = device_kind(device)
        if _any_gpu(device):
            busy = Counter(self.held.values())
            index = min(range(self.count), key=lambda k: (busy[k], k))
            device = f"cuda:{index}"
        if kind != "cpu" and index is not None and index < self.count:
            self.held[id(spec)] = index
        return device

    def release(self, spec: dict) -> None:
        self.held.pop(id(spec), None)
