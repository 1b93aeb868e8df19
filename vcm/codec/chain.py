"""λ points chained on one fit: each rate–distortion stage after the first starts where the stage of the
next-smaller λ ended (its trained network and quantizers) instead of from the fit.

A stage trains the network on as well as it shapes it for the rate, so a point that starts from a
finished stage has had that stage's steps too: at no extra compute, a curve's lower points gain
(the preset's sections on the three dev clips: docs/hinerv.md, "Points chained"). The chain runs from
the smallest λ up (the highest rate first); started the other way, the top point lost.

The state a stage ends in is kept beside its stream (``STATE``) for the chain's next point, which
refuses to start without it: a point never silently starts from the fit instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from vcm.errors import VcmError
from vcm.fsutil import load_torch_dict, save_torch

STATE = "stage_end.pt"  # in a chained point's folder: where its stage ended, for the next point


@dataclass
class StageEnd:
    """Where a rate–distortion stage ended: the network it trained (in place), its quantizers' state,
    its λ, and the seconds of every stage of the chain up to it (a chained point's stream costs them all)."""

    model: torch.nn.Module
    quantizers: dict
    lam: float
    seconds: float

    def state(self) -> dict:
        """The state as saved (network and quantizers, a few hundred kB)."""
        return {"model": self.model.state_dict(), "quantizers": self.quantizers, "lambda": self.lam, "seconds": self.seconds}

    def save(self, path: Path) -> None:
        """Write the state atomically to ``path``."""
        save_torch(path, self.state())

    @classmethod
    def from_state(cls, state: dict, fresh_model: torch.nn.Module) -> "StageEnd":
        """A saved state loaded into ``fresh_model`` (a new copy of the same fit's network)."""
        fresh_model.load_state_dict(state["model"])
        return cls(fresh_model, dict(state["quantizers"]), float(state["lambda"]), float(state["seconds"]))

    @classmethod
    def load(cls, path: Path, fresh_model: torch.nn.Module) -> "StageEnd":
        """The state saved at ``path``, loaded into ``fresh_model`` (a new copy of the same fit's network)."""
        path = Path(path)
        if not path.is_file():
            raise VcmError(f"{path.parent.name} has no trained state to start from ({STATE} is missing: its point "
                           "failed or was run by an earlier vcm); run the curve again with --force")
        state = load_torch_dict(path, "a rate–distortion stage's end state")
        try:
            return cls.from_state(state, fresh_model)
        except (KeyError, RuntimeError, TypeError, ValueError) as err:
            raise VcmError(f"{path} does not hold the end state of a stage on this fit ({type(err).__name__})") from None


def chain_order(lams: list[float]) -> list[int]:
    """Indices of ``lams`` in the order a chain runs them: the smallest λ (highest rate) first."""
    return sorted(range(len(lams)), key=lambda i: lams[i])
