"""Whether a fit's network can be trained in the memory the machine has, checked before it is built.

``vcm fit --params 1G`` asked for a network whose weights alone took 4 GB; building it failed deep in
torch's allocator with a traceback (or, with swap, after minutes). The check here is a lower bound —
the training state of every parameter, one batch's activations and the loss's maps, forward and backward —
so it never refuses a fit that would have run; what it catches is a size off by orders of magnitude, and
frames far too large for one step. Before the loss was counted, a fit on 9000×9000 frames that needed about
28 GB was counted at 6.6 (now 21.7: a machine with between the two free still ends such a fit in the kernel).
"""

from __future__ import annotations

import torch

from vcm import memory
from vcm.errors import VcmError
from vcm.nerv import registry
from vcm.words import human

# float32 weight, its gradient and Adam's two moments.
TRAIN_BYTES_PER_PARAM = 16
# What a step's loss holds per pixel of each frame of the batch, its maps and their gradients (bytes), under
# what was measured (peak resident memory of a forward and backward pass on a 2000×2000 frame, one-off script):
# eq. (4) 250, eq. (6) 466. With the network's activations a fit's step took 350 (NeRV) and 360 (HiNeRV) bytes a
# pixel where this counts 268 and 329.
LOSS_BYTES_PER_PIXEL = {"nerv": 224, "sa-nerv": 416}


def training_bytes(arch: str, model_cfg, batch: int, loss: str = "nerv") -> int:
    """At least what training ``model_cfg`` at ``batch`` frames a step with ``loss`` holds (bytes): the
    parameters' training state, and per frame of the batch the network's activations and the loss's maps."""
    model_cls = registry.entry(arch).model_cls
    per_frame = model_cls.frame_bytes(model_cfg) + LOSS_BYTES_PER_PIXEL[loss] * model_cfg.height * model_cfg.width
    return TRAIN_BYTES_PER_PARAM * model_cls.count_params(model_cfg) + batch * per_frame


def available_bytes(device: torch.device) -> int | None:
    """Memory a new allocation can take on ``device`` (bytes), or None where it cannot be told. On CUDA: what the
    driver has free, and what this process's allocator holds unused (the blocks an earlier fit in the same process,
    a CTC worker's earlier point, left cached: the driver counts them as taken, and the next fit was refused)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free) + int(torch.cuda.memory_reserved(device)) - int(torch.cuda.memory_allocated(device))
    return memory.free_host_bytes() if device.type == "cpu" else None


def check_training_memory(arch: str, model_cfg, batch: int, device: torch.device, available: int | None = None,
                          loss: str = "nerv") -> None:
    """Refuse, in one line, a network whose training with ``loss`` would not fit in ``available`` bytes
    (default: what the device has free now)."""
    need = training_bytes(arch, model_cfg, batch, loss)
    available = available_bytes(device) if available is None else available
    if available is not None and need > available:
        params = registry.entry(arch).model_cls.count_params(model_cfg)
        raise VcmError(f"a network of {params:,} parameters needs at least {human(need)} to train at batch {batch} on "
                       f"{model_cfg.width}x{model_cfg.height} frames (weights, gradients and Adam's moments, and the "
                       f"batch's activations and loss), and {device.type} has {human(available)} free; ask for fewer "
                       f"(--params), a smaller --batch or smaller frames")
