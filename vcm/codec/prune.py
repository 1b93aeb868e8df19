"""Global L1-magnitude pruning of the weights a representation marks prunable (NeRV: stem and convs)."""

from __future__ import annotations

import torch


def prunable(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if model.prunable(n)}


def magnitude_masks(model: torch.nn.Module, fraction: float) -> dict[str, torch.Tensor]:
    """Boolean keep-masks zeroing exactly ``round(fraction · N)`` of the smallest |w| over all targets."""
    params = prunable(model)
    if fraction <= 0:
        return {n: torch.ones_like(p, dtype=torch.bool) for n, p in params.items()}
    flat = torch.cat([p.detach().abs().flatten() for p in params.values()])
    k = int(round(fraction * flat.numel()))
    order = torch.argsort(flat, stable=True)  # ties broken by position: exactly k pruned
    keep = torch.ones_like(flat, dtype=torch.bool)
    keep[order[:k]] = False
    masks, i = {}, 0
    for n, p in params.items():
        masks[n] = keep[i:i + p.numel()].view_as(p)
        i += p.numel()
    return masks


@torch.no_grad()
def apply_masks(model: torch.nn.Module, masks: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    for n, m in masks.items():
        params[n].mul_(m.to(params[n].device, params[n].dtype))
