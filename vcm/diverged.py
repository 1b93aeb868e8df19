"""Training that stopped being numbers: one error, and a guard that keeps such a state from being saved.

A NaN or infinite weight never recovers (every later step is NaN too), so a trainer stops at the first
non-finite loss it reads, and no save replaces the last finite state with it (a resume would replay it).
"""

from __future__ import annotations

import torch

from vcm.errors import VcmError


class TrainingDiverged(VcmError):
    """The loss or the weights stopped being finite numbers: training cannot recover from that."""


def refuse_nonfinite(state: dict, what: str, advice: str) -> None:
    """Raise :class:`TrainingDiverged` when a floating tensor of ``state`` (a state dict) holds NaN or
    infinity; ``what`` names the state's owner in the message and ``advice`` says what to change."""
    bad = next((name for name, value in state.items()
                if torch.is_tensor(value) and value.is_floating_point() and not bool(torch.isfinite(value).all())), None)
    if bad is not None:
        raise TrainingDiverged(f"training diverged: {what}'s {bad} holds NaN or infinity, so it was not saved "
                               f"(what was saved before is kept); {advice}")
