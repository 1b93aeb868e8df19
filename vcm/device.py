"""``--device auto|cpu|cuda[:N]`` → a torch.device (CUDA when present for auto)."""

from __future__ import annotations

from vcm.errors import VcmError
from vcm.words import counted


def device_kind(name: str | None) -> tuple[str, int | None]:
    """``(kind, GPU index)`` that a ``--device`` value names, unchecked: ``("auto", None)``, ``("cuda", 1)`` for
    ``cuda:1``, ``("cuda", None)`` for ``cuda``, ``("cpu", None)``."""
    kind, _, index = (name or "auto").strip().lower().partition(":")
    return kind, int(index) if index.isdigit() else None


def resolve_device(name: str = "auto"):
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` as a torch.device, refused in one line when this machine lacks it
    (torch also names devices vcm never runs on, such as ``mps`` or ``meta``: they failed deep in a run)."""
    import torch

    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    kind, _, index = name.partition(":")
    if kind not in ("cpu", "cuda") or (index and not (index.isdigit() and (kind == "cuda" or int(index) == 0))):
        raise VcmError(f"unknown device {name!r}; use auto, cpu or cuda[:N]")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise VcmError(f"--device {name} was asked for but no CUDA GPU is available; use --device cpu or auto")
        count = torch.cuda.device_count()
        if index and int(index) >= count:
            raise VcmError(f"--device {name}: this machine has {counted(count, 'CUDA GPU')} (cuda:0"
                           f"{f' to cuda:{count - 1}' if count > 1 else ''}); use one of them, or auto")
    return torch.device(name)


def describe(device) -> str:
    """A human name for a device: the GPU's model, or the CPU and its thread count."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    n = torch.get_num_threads()
    return f"cpu ({counted(n, 'thread')})"


def rng_state(device) -> dict:
    """The generators training draws its noise from (the CPU's, and the GPU's on CUDA), to save with its state."""
    import torch

    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device) -> None:
    """Restore what :func:`rng_state` saved."""
    import torch

    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
