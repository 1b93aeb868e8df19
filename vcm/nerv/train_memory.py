"""Whether a fit's network can be trained in the memory the machine has, checked before it is built.

``vcm fit --params 1G`` asked for a network whose weights alone took 4 GB; building it failed deep in
torch's allocator with a traceback (or, with swap, after minutes). The check here is a lower bound —
the training state of every parameter plus one batch of decoded frames — so it never refuses a fit that
would have run; what it catches is a size off by orders of magnitude.
"""

from __future__ import annotations

from pathlib import Path

import torch

from vcm.bitstream.budget import human
from vcm.errors import VcmError
from vcm.nerv import registry

# float32 weight, its gradient and Adam's two moments.
TRAIN_BYTES_PER_PARAM = 16


def training_bytes(arch: str, model_cfg, batch: int) -> int:
    """At least what training ``model_cfg`` at ``batch`` frames a step holds (bytes): the parameters'
    training state and one forward pass over the batch (the backward pass keeps more)."""
    params = registry.entry(arch).model_cls.count_params(model_cfg)
    return TRAIN_BYTES_PER_PARAM * params + batch * registry.frame_memory(arch, model_cfg)


def available_bytes(device: torch.device) -> int | None:
    """Memory a new allocation can take on ``device`` (bytes), or None where it cannot be told."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type != "cpu":
        return None
    found = []
    try:  # Linux: what can be had without swapping, page cache included
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:  # a container's own limit (cgroup v2), which /proc/meminfo does not show
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            found.append(int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text()))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def check_training_memory(arch: str, model_cfg, batch: int, device: torch.device, available: int | None = None) -> None:
    """Refuse, in one line, a network whose training would not fit in ``available`` bytes (default: what the
    device has free now)."""
    need = training_bytes(arch, model_cfg, batch)
    available = available_bytes(device) if available is None else available
    if available is not None and need > available:
        params = registry.entry(arch).model_cls.count_params(model_cfg)
        raise VcmError(f"a network of {params:,} parameters needs at least {human(need)} to train at batch {batch} "
                       f"(weights, gradients and Adam's moments, and one batch of frames), and {device.type} has "
                       f"{human(available)} free; ask for fewer (--params) or a smaller --batch")
