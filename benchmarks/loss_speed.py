"""SA-NeRV loss: ms per forward + backward, PyTorch reference vs fused Triton kernel.

    uv run python benchmarks/loss_speed.py                      # 832x480, batch 4, on CUDA if present
    uv run python benchmarks/loss_speed.py --size 416x240 --batch 8 --device cpu

The Triton kernel needs CUDA; on a CPU-only machine its row says so (its numerics are tested in
Triton's interpreter, whose speed means nothing). Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import time

import torch
from _common import print_table, run

from vcm.device import describe, resolve_device
from vcm.nerv.sa_loss import sa_nerv_loss
from vcm.video.naming import parse_size


def time_it(fn, device, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 1000 * (time.perf_counter() - t) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="832x480")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    device = resolve_device(args.device)
    w, h = parse_size(args.size)
    torch.manual_seed(0)
    x = torch.rand(args.batch, 3, h, w, device=device)
    y = (x + 0.05 * torch.randn_like(x)).clamp(0, 1).requires_grad_(True)
    m = (torch.rand(args.batch, 1, h, w, device=device) > 0.9).float()

    def step(loss_fn):
        def run():
            y.grad = None
            loss_fn(y, x, m).backward()
        return run

    rows = [("torch (reference)", f"{time_it(step(sa_nerv_loss), device, args.repeats):.2f}")]
    if device.type == "cuda":
        from vcm.nerv.sa_loss_triton import fused_sa_nerv_loss

        rows.append(("triton (fused)", f"{time_it(step(fused_sa_nerv_loss), device, args.repeats):.2f}"))
    else:
        rows.append(("triton (fused)", "needs CUDA"))
    print_table(f"SA-NeRV loss, forward + backward, {w}x{h}, batch {args.batch}, on {describe(device)}",
                ["implementation", "ms / step"], [list(r) for r in rows])


if __name__ == "__main__":
    run(main)
