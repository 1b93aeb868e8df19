"""Fused SA-NeRV loss (eq. 6) in Triton: one forward kernel for all four terms, one backward.

Forward (one program per (image plane, BH×BW tile)):
- L1 of x̂−x and of (x̂−x)⊙s over the tile's pixels;
- the ten Gaussian-window statistics (μ, E[·²], E[x·x̂] of the plain and the masked pair) at the
  tile's SSIM positions, computed separably: for each of the 11 window rows an 11-tap horizontal
  sum, weighted by the vertical tap; inputs are read once per tap from cache;
- SSIM sums and, per SSIM position, ∂S/∂μ_x̂, ∂S/∂E[x̂²], ∂S/∂E[x·x̂] already scaled by
  dL/dS (6 maps), which is all the backward pass needs.
Per-program partial sums (no atomics) keep the result deterministic.

Backward (one program per tile of pixels): dL/dx̂ = L1 signs + Σ over the 11×11 windows that
contain the pixel of g·(∂μ + 2x̂·∂E[x̂²] + x·∂E[x x̂]), the masked part times s.

Matches ``vcm.nerv.sa_loss.sa_nerv_loss`` (pytorch-msssim's SSIM: 11-tap Gaussian σ = 1.5,
valid windows, C1 = 0.01², C2 = 0.03²). Runs on CUDA; ``TRITON_INTERPRET=1`` runs it on the CPU
for testing. It knows nothing of the PyTorch implementation: ``vcm.nerv.sa_loss`` chooses between them
(frames smaller than the window go to PyTorch).
"""

from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl

WIN = 11
SIGMA = 1.5
C1 = 0.01**2
C2 = 0.03**2
BLOCK_H, BLOCK_W = 16, 32


def _on_device_of(t: torch.Tensor):
    """The context in which a kernel on ``t`` is launched: ``t``'s GPU as the current CUDA device. Triton launches
    on the current device, not on its arguments' (tensors on ``cuda:1`` with ``cuda:0`` current were refused as
    "cannot be accessed from Triton"), and ``--device cuda:N`` leaves the current device as it was."""
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()


def gaussian_window(device) -> torch.Tensor:
    """pytorch-msssim's 1-D window: exp(−k²/2σ²), k = −5…5, normalised; float32 [11]."""
    k = torch.arange(WIN, dtype=torch.float32) - WIN // 2
    g = torch.exp(-(k**2) / (2 * SIGMA**2))
    return (g / g.sum()).to(device)


@triton.jit
def _tile(x_ptr, y_ptr, m_ptr, C, H, W, tiles_w, BH: tl.constexpr, BW: tl.constexpr):
    """This program's plane and BH×BW tile: coordinates, plane offsets, and x, x̂, s at its pixels."""
    plane = tl.program_id(0)
    tile = tl.program_id(1)
    rows = (tile // tiles_w) * BH + tl.arange(0, BH)[:, None]
    cols = (tile % tiles_w) * BW + tl.arange(0, BW)[None, :]
    base = plane * H * W
    mbase = (plane // C) * H * W
    in_img = (rows < H) & (cols < W)
    off = rows * W + cols
    x0 = tl.load(x_ptr + base + off, mask=in_img, other=0.0)
    y0 = tl.load(y_ptr + base + off, mask=in_img, other=0.0)
    m0 = tl.load(m_ptr + mbase + off, mask=in_img, other=0.0)
    return plane, rows, cols, base, mbase, in_img, off, x0, y0, m0


@triton.jit
def _ssim_and_grads(mx, my, exx, eyy, exy, c1, c2, scale):
    """SSIM from window statistics, and dS/dμ_x̂, dS/dE[x̂²], dS/dE[x x̂] times ``scale`` (= dL/dS)."""
    a1 = 2 * mx * my + c1
    b1 = mx * mx + my * my + c1
    a2 = 2 * (exy - mx * my) + c2
    b2 = (exx - mx * mx) + (eyy - my * my) + c2
    s = a1 * a2 / (b1 * b2)
    d_mu = s * (2 * mx / a1 - 2 * my / b1 - 2 * mx / a2 + 2 * my / b2) * scale
    return s, d_mu, -s / b2 * scale, 2 * a1 / (b1 * b2) * scale


@triton.jit
def _sa_nerv_fwd(x_ptr, y_ptr, m_ptr, g_ptr, partial_ptr, dmap_ptr,
                 C, H, W, Ho, Wo, n_planes, tiles_w, n_tiles,
                 c1, c2, scale_full, scale_mask,
                 BH: tl.constexpr, BW: tl.constexpr, WIN: tl.constexpr):
    plane, rows, cols, base, mbase, in_img, off, x0, y0, m0 = _tile(x_ptr, y_ptr, m_ptr, C, H, W, tiles_w, BH, BW)
    out_ok = (rows < Ho) & (cols < Wo)
    l1 = tl.sum(tl.abs(y0 - x0))
    l1m = tl.sum(tl.abs(y0 * m0 - x0 * m0))

    zero = tl.zeros([BH, BW], dtype=tl.float32)
    mx, my, exx, eyy, exy = zero, zero, zero, zero, zero
    nx, ny, nxx, nyy, nxy = zero, zero, zero, zero, zero
    for dy in tl.static_range(WIN):
        gy = tl.load(g_ptr + dy)
        hx, hy, hxx, hyy, hxy = zero, zero, zero, zero, zero
        kx, ky, kxx, kyy, kxy = zero, zero, zero, zero, zero
        for dx in tl.static_range(WIN):
            gx = tl.load(g_ptr + dx)
            o = (rows + dy) * W + cols + dx
            xv = tl.load(x_ptr + base + o, mask=out_ok, other=0.0)
            yv = tl.load(y_ptr + base + o, mask=out_ok, other=0.0)
            mv = tl.load(m_ptr + mbase + o, mask=out_ok, other=0.0)
            xm = xv * mv
            ym = yv * mv
            hx += gx * xv
            hy += gx * yv
            hxx += gx * xv * xv
            hyy += gx * yv * yv
            hxy += gx * xv * yv
            kx += gx * xm
            ky += gx * ym
            kxx += gx * xm * xm
            kyy += gx * ym * ym
            kxy += gx * xm * ym
        mx += gy * hx
        my += gy * hy
        exx += gy * hxx
        eyy += gy * hyy
        exy += gy * hxy
        nx += gy * kx
        ny += gy * ky
        nxx += gy * kxx
        nyy += gy * kyy
        nxy += gy * kxy

    plane_size = Ho * Wo
    o_out = rows * Wo + cols
    s, d_mu, d_yy, d_xy = _ssim_and_grads(mx, my, exx, eyy, exy, c1, c2, scale_full)
    sm, e_mu, e_yy, e_xy = _ssim_and_grads(nx, ny, nxx, nyy, nxy, c1, c2, scale_mask)

    dbase = plane * plane_size + o_out
    stride = n_planes * plane_size
    tl.store(dmap_ptr + dbase, d_mu, mask=out_ok)
    tl.store(dmap_ptr + stride + dbase, d_yy, mask=out_ok)
    tl.store(dmap_ptr + 2 * stride + dbase, d_xy, mask=out_ok)
    tl.store(dmap_ptr + 3 * stride + dbase, e_mu, mask=out_ok)
    tl.store(dmap_ptr + 4 * stride + dbase, e_yy, mask=out_ok)
    tl.store(dmap_ptr + 5 * stride + dbase, e_xy, mask=out_ok)

    p = (plane * n_tiles + tl.program_id(1)) * 4
    tl.store(partial_ptr + p, l1)
    tl.store(partial_ptr + p + 1, l1m)
    tl.store(partial_ptr + p + 2, tl.sum(tl.where(out_ok, s, 0.0)))
    tl.store(partial_ptr + p + 3, tl.sum(tl.where(out_ok, sm, 0.0)))


@triton.jit
def _sa_nerv_bwd(x_ptr, y_ptr, m_ptr, g_ptr, dmap_ptr, grad_ptr,
                 C, H, W, Ho, Wo, n_planes, tiles_w,
                 l1_full, l1_mask,
                 BH: tl.constexpr, BW: tl.constexpr, WIN: tl.constexpr):
    plane, rows, cols, base, mbase, in_img, off, x0, y0, m0 = _tile(x_ptr, y_ptr, m_ptr, C, H, W, tiles_w, BH, BW)
    xm0 = x0 * m0
    ym0 = y0 * m0
    d = y0 - x0
    dm = ym0 - xm0
    grad = l1_full * tl.where(d > 0, 1.0, tl.where(d < 0, -1.0, 0.0))
    grad += l1_mask * m0 * tl.where(dm > 0, 1.0, tl.where(dm < 0, -1.0, 0.0))

    plane_size = Ho * Wo
    stride = n_planes * plane_size
    acc = tl.zeros([BH, BW], dtype=tl.float32)
    accm = tl.zeros([BH, BW], dtype=tl.float32)
    for dy in tl.static_range(WIN):
        gy = tl.load(g_ptr + dy)
        for dx in tl.static_range(WIN):
            gx = tl.load(g_ptr + dx)
            orow = rows - dy
            ocol = cols - dx
            ok = in_img & (orow >= 0) & (orow < Ho) & (ocol >= 0) & (ocol < Wo)
            o = plane * plane_size + orow * Wo + ocol
            a = tl.load(dmap_ptr + o, mask=ok, other=0.0)
            b = tl.load(dmap_ptr + stride + o, mask=ok, other=0.0)
            c = tl.load(dmap_ptr + 2 * stride + o, mask=ok, other=0.0)
            am = tl.load(dmap_ptr + 3 * stride + o, mask=ok, other=0.0)
            bm = tl.load(dmap_ptr + 4 * stride + o, mask=ok, other=0.0)
            cm = tl.load(dmap_ptr + 5 * stride + o, mask=ok, other=0.0)
            w = gy * gx
            acc += w * (a + 2 * y0 * b + x0 * c)
            accm += w * (am + 2 * ym0 * bm + xm0 * cm)
    grad += acc + m0 * accm
    tl.store(grad_ptr + base + off, grad, mask=in_img)


class _FusedSANeRV(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x_hat, x, mask, beta: float, weight: float):
        y = x_hat.detach().float().contiguous()
        x = x.detach().float().contiguous()
        m = mask.detach().float().contiguous()
        B, C, H, W = y.shape
        Ho, Wo = H - WIN + 1, W - WIN + 1
        n, n_map, planes = B * C * H * W, B * C * Ho * Wo, B * C
        tiles_w = triton.cdiv(W, BLOCK_W)
        n_tiles = triton.cdiv(H, BLOCK_H) * tiles_w
        g = gaussian_window(y.device)
        partial = torch.empty((planes, n_tiles, 4), device=y.device, dtype=torch.float32)
        dmap = torch.empty((6, planes, Ho, Wo), device=y.device, dtype=torch.float32)
        with _on_device_of(y):
            _sa_nerv_fwd[(planes, n_tiles)](
                x, y, m, g, partial, dmap, C, H, W, Ho, Wo, planes, tiles_w, n_tiles,
                C1, C2, -(1 - beta) / n_map, -weight * (1 - beta) / n_map,
                BH=BLOCK_H, BW=BLOCK_W, WIN=WIN)
        sums = partial.sum(dim=(0, 1))
        loss = (beta * sums[0] / n + (1 - beta) * (1 - sums[2] / n_map)
                + weight * (beta * sums[1] / n + (1 - beta) * (1 - sums[3] / n_map)))
        ctx.save_for_backward(x, y, m, g, dmap)
        ctx.consts = (beta, weight, n, tiles_w, n_tiles)
        ctx.input_dtype = x_hat.dtype
        return loss

    @staticmethod
    def backward(ctx, grad_out):
        x, y, m, g, dmap = ctx.saved_tensors
        beta, weight, n, tiles_w, n_tiles = ctx.consts
        B, C, H, W = y.shape
        grad = torch.empty_like(y)
        with _on_device_of(y):
            _sa_nerv_bwd[(B * C, n_tiles)](
                x, y, m, g, dmap, grad, C, H, W, H - WIN + 1, W - WIN + 1, B * C, tiles_w,
                beta / n, weight * beta / n, BH=BLOCK_H, BW=BLOCK_W, WIN=WIN)
        return (grad * grad_out).to(ctx.input_dtype), None, None, None, None


MIN_SIDE = WIN  # frames need one whole SSIM window; the dispatcher (vcm.nerv.sa_loss) sends smaller ones elsewhere


def fused_sa_nerv_loss(x_hat: torch.Tensor, x: torch.Tensor, mask: torch.Tensor, beta: float = 0.7,
                       mask_weight: float = 1.0) -> torch.Tensor:
    """Eq. (6) with the fused kernels; ``mask`` is ``[B,1,H,W]``; both sides at least ``MIN_SIDE``."""
    if min(x_hat.shape[-2:]) < MIN_SIDE:
        raise ValueError(f"the fused SA-NeRV loss needs frames of at least {MIN_SIDE}x{MIN_SIDE}")
    return _FusedSANeRV.apply(x_hat, x, mask, float(beta), float(mask_weight))
