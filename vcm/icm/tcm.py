"""TCM: Learned Image Compression with Mixed Transformer-CNN Architectures (Liu, Sun, Katto, CVPR 2023).

The network of SA-ICM. Built on CompressAI's layers and entropy models, with the parameter names
and shapes of the public TCM / SA-ICM checkpoints (``g_a``, ``g_s``, ``h_a``, ``h_mean_s``,
``h_scale_s``, ``atten_mean``, ``atten_scale``, ``cc_mean_transforms``, ``cc_scale_transforms``,
``lrp_transforms``, ``entropy_bottleneck``, ``gaussian_conditional``), so they load as they are.

Shapes: x ``float [B,3,H,W]`` in [0,1] with H, W multiples of ``TCMConfig.pad_multiple`` (128:
16× down-sampling, then 8×8 attention windows); y ``[B,M,H/16,W/16]``; z ``[B,z,H/64,W/64]``.
Official configuration: N = 128, M = 320, 5 channel slices, window 8, config [2]*6,
head_dim [8,16,32,32,16,8], z with 192 channels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.layers import (AttentionBlock, ResidualBlock, ResidualBlockUpsample, ResidualBlockWithStride, conv3x3,
                               subpel_conv3x3)
from compressai.models import CompressionModel
from torch import nn

from vcm.icm.archs import TCMConfig


def ste_round(x: torch.Tensor) -> torch.Tensor:
    return (torch.round(x) - x).detach() + x


def _conv(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, 1, 1)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside w×w windows (shifted by w/2 for type 'SW'), relative position bias.

    Input/output ``[B, H, W, C]`` with H, W multiples of w. Parameter names as the reference (``msa``).
    """

    def __init__(self, dim: int, head_dim: int, window: int, shifted: bool):
        super().__init__()
        self.heads, self.head_dim, self.window, self.shifted = dim // head_dim, head_dim, window, shifted
        self.embedding_layer = nn.Linear(dim, 3 * dim)
        self.relative_position_params = nn.Parameter(torch.zeros(self.heads, 2 * window - 1, 2 * window - 1))
        nn.init.trunc_normal_(self.relative_position_params, std=0.02)
        self.linear = nn.Linear(dim, dim)

    def _bias(self) -> torch.Tensor:
        w = self.window
        ij = torch.stack(torch.meshgrid(torch.arange(w), torch.arange(w), indexing="ij"), -1).reshape(-1, 2)
        rel = ij[:, None, :] - ij[None, :, :] + w - 1  # [w², w², 2]
        return self.relative_position_params[:, rel[..., 0], rel[..., 1]]  # [heads, w², w²]

    def _mask(self, hw: int, ww: int, device) -> torch.Tensor:
        """True where query and key come from different image regions after the cyclic shift."""
        w, s = self.window, self.window // 2
        hh, wwp = hw * w, ww * w
        region = torch.zeros(hh, wwp, dtype=torch.long, device=device)
        for i, rs in enumerate((slice(0, hh - w), slice(hh - w, hh - s), slice(hh - s, hh))):
            for j, cs in enumerate((slice(0, wwp - w), slice(wwp - w, wwp - s), slice(wwp - s, wwp))):
                region[rs, cs] = 3 * i + j
        win = region.view(hw, w, ww, w).permute(0, 2, 1, 3).reshape(hw * ww, w * w)
        return win[:, :, None] != win[:, None, :]  # [windows, w², w²]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, wd, c = x.shape
        w, s = self.window, self.window // 2
        if self.shifted:
            x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))
        hw, ww = h // w, wd // w
        win = x.view(b, hw, w, ww, w, c).permute(0, 1, 3, 2, 4, 5).reshape(b, hw * ww, w * w, c)
        qkv = self.embedding_layer(win).view(b, hw * ww, w * w, 3, self.heads, self.head_dim)
        q, k, v = qkv.permute(3, 4, 0, 1, 2, 5)  # each [heads, b, windows, w², head_dim]
        sim = torch.einsum("hbnpc,hbnqc->hbnpq", q, k) * self.head_dim**-0.5
        sim = sim + self._bias()[:, None, None]
        if self.shifted:
            sim = sim.masked_fill(self._mask(hw, ww, x.device)[None, None], float("-inf"))
        out = torch.einsum("hbnpq,hbnqc->bnphc", sim.softmax(-1), v).reshape(b, hw * ww, w * w, c)
        out = self.linear(out).view(b, hw, ww, w, w, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, wd, c)
        if self.shifted:
            out = torch.roll(out, shifts=(s, s), dims=(1, 2))
        return out


class SwinLayer(nn.Module):
    """Pre-norm transformer block on ``[B, H, W, C]`` (reference name: ``Block``)."""

    def __init__(self, dim: int, head_dim: int, window: int, shifted: bool):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.msa = WindowAttention(dim, head_dim, window, shifted)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.msa(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class ConvTransBlock(nn.Module):
    """Mixed block on ``[B, 2N, H, W]``: half the channels through a residual CNN, half through Swin."""

    def __init__(self, dim: int, head_dim: int, window: int, shifted: bool):
        super().__init__()
        self.dim = dim
        self.trans_block = SwinLayer(dim, head_dim, window, shifted)
        self.conv1_1 = nn.Conv2d(2 * dim, 2 * dim, 1)
        self.conv1_2 = nn.Conv2d(2 * dim, 2 * dim, 1)
        self.conv_block = ResidualBlock(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv_x, trans_x = torch.split(self.conv1_1(x), (self.dim, self.dim), dim=1)
        conv_x = self.conv_block(conv_x) + conv_x
        trans_x = self.trans_block(trans_x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return x + self.conv1_2(torch.cat((conv_x, trans_x), dim=1))


class SwinPair(nn.Module):
    """A window block and a shifted-window block on ``[B, C, H, W]``; pads to whole windows and crops back."""

    def __init__(self, dim: int, head_dim: int, window: int):
        super().__init__()
        self.window = window
        self.block_1 = SwinLayer(dim, head_dim, window, shifted=False)
        self.block_2 = SwinLayer(dim, head_dim, window, shifted=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = -h % self.window, -w % self.window
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))
        y = self.block_2(self.block_1(x.permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
        return y[..., :h, :w]


class SliceAttention(AttentionBlock):
    """CompressAI's attention block whose non-local branch is a Swin pair, between 1×1 projections."""

    def __init__(self, dim: int, inner: int, head_dim: int, window: int):
        super().__init__(N=inner)
        self.non_local_block = SwinPair(inner, head_dim, window)
        self.in_conv = nn.Conv2d(dim, inner, 1)
        self.out_conv = nn.Conv2d(inner, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.in_conv(x)
        out = self.conv_a(x) * torch.sigmoid(self.conv_b(self.non_local_block(x))) + x
        return self.out_conv(out)


def _stage(dim: int, count: int, head_dim: int, window: int) -> list[nn.Module]:
    return [ConvTransBlock(dim, head_dim, window, shifted=bool(i % 2)) for i in range(count)]


class TCM(CompressionModel):
    """``forward(x)`` → {x_hat, likelihoods}; ``compress(x)`` / ``decompress(strings, shape)`` with rANS."""

    def __init__(self, cfg: TCMConfig = TCMConfig()):
        super().__init__()
        self.cfg = cfg
        N, M, c, hd, win = cfg.N, cfg.M, cfg.config, cfg.head_dim, cfg.window
        self.g_a = nn.Sequential(
            ResidualBlockWithStride(3, 2 * N, 2), *_stage(N, c[0], hd[0], win),
            ResidualBlockWithStride(2 * N, 2 * N, 2), *_stage(N, c[1], hd[1], win),
            ResidualBlockWithStride(2 * N, 2 * N, 2), *_stage(N, c[2], hd[2], win),
            conv3x3(2 * N, M, stride=2))
        self.g_s = nn.Sequential(
            ResidualBlockUpsample(M, 2 * N, 2), *_stage(N, c[3], hd[3], win),
            ResidualBlockUpsample(2 * N, 2 * N, 2), *_stage(N, c[4], hd[4], win),
            ResidualBlockUpsample(2 * N, 2 * N, 2), *_stage(N, c[5], hd[5], win),
            subpel_conv3x3(2 * N, 3, 2))
        zc, hh, hw = cfg.z_channels, cfg.hyper_head_dim, cfg.hyper_window
        self.h_a = nn.Sequential(ResidualBlockWithStride(M, 2 * N, 2), *_stage(N, c[0], hh, hw),
                                 conv3x3(2 * N, zc, stride=2))
        self.h_mean_s = nn.Sequential(ResidualBlockUpsample(zc, 2 * N, 2), *_stage(N, c[3], hh, hw),
                                      subpel_conv3x3(2 * N, M, 2))
        self.h_scale_s = nn.Sequential(ResidualBlockUpsample(zc, 2 * N, 2), *_stage(N, c[3], hh, hw),
                                       subpel_conv3x3(2 * N, M, 2))
        s = M // cfg.num_slices
        support = [M + s * min(i, cfg.max_support_slices) for i in range(cfg.num_slices)]
        h1, h2 = cfg.cc_hidden

        def transform(c_in):
            return nn.Sequential(_conv(c_in, h1), nn.GELU(), _conv(h1, h2), nn.GELU(), _conv(h2, s))

        self.atten_mean = nn.ModuleList(nn.Sequential(SliceAttention(d, cfg.atten_dim, cfg.atten_head_dim, win)) for d in support)
        self.atten_scale = nn.ModuleList(nn.Sequential(SliceAttention(d, cfg.atten_dim, cfg.atten_head_dim, win)) for d in support)
        self.cc_mean_transforms = nn.ModuleList(transform(d) for d in support)
        self.cc_scale_transforms = nn.ModuleList(transform(d) for d in support)
        self.lrp_transforms = nn.ModuleList(transform(M + s * min(i + 1, cfg.max_support_slices + 1))
                                            for i in range(cfg.num_slices))
        self.entropy_bottleneck = EntropyBottleneck(zc)
        self.gaussian_conditional = GaussianConditional(None)

    def update(self, scale_table=None, force: bool = False) -> bool:
        if scale_table is None:
            scale_table = torch.exp(torch.linspace(math.log(0.11), math.log(256), 64))
        updated = self.gaussian_conditional.update_scale_table(scale_table, force=force)
        return super().update(force=force) | updated

    def _slice_params(self, i: int, means, scales, done: list, y_size):
        support = done[: self.cfg.max_support_slices]
        mean_support = self.atten_mean[i](torch.cat([means, *support], dim=1))
        mu = self.cc_mean_transforms[i](mean_support)[..., : y_size[0], : y_size[1]]
        scale_support = self.atten_scale[i](torch.cat([scales, *support], dim=1))
        scale = self.cc_scale_transforms[i](scale_support)[..., : y_size[0], : y_size[1]]
        return mean_support, mu, scale

    def _refine(self, i: int, mean_support, y_hat_slice):
        return y_hat_slice + 0.5 * torch.tanh(self.lrp_transforms[i](torch.cat([mean_support, y_hat_slice], dim=1)))

    def forward(self, x: torch.Tensor) -> dict:
        y = self.g_a(x)
        z = self.h_a(y)
        _, z_likelihoods = self.entropy_bottleneck(z)
        offset = self.entropy_bottleneck._get_medians()
        z_hat = ste_round(z - offset) + offset
        means, scales = self.h_mean_s(z_hat), self.h_scale_s(z_hat)
        done, likelihoods = [], []
        for i, y_slice in enumerate(y.chunk(self.cfg.num_slices, 1)):
            mean_support, mu, scale = self._slice_params(i, means, scales, done, y.shape[2:])
            _, lik = self.gaussian_conditional(y_slice, scale, mu)
            likelihoods.append(lik)
            done.append(self._refine(i, mean_support, ste_round(y_slice - mu) + mu))
        x_hat = self.g_s(torch.cat(done, dim=1))
        return {"x_hat": x_hat, "likelihoods": {"y": torch.cat(likelihoods, dim=1), "z": z_likelihoods}}

    @torch.no_grad()
    def compress(self, x: torch.Tensor) -> dict:
        """rANS strings: one per channel slice of y, then z. Also returns the encoder's ``x_hat``."""
        y = self.g_a(x)
        z = self.h_a(y)
        z_strings = self.entropy_bottleneck.compress(z)
        z_hat = self.entropy_bottleneck.decompress(z_strings, z.shape[-2:])
        means, scales = self.h_mean_s(z_hat), self.h_scale_s(z_hat)
        done, strings = [], []
        for i, y_slice in enumerate(y.chunk(self.cfg.num_slices, 1)):
            mean_support, mu, scale = self._slice_params(i, means, scales, done, y.shape[2:])
            index = self.gaussian_conditional.build_indexes(scale)
            strings.append(self.gaussian_conditional.compress(y_slice, index, means=mu))
            q = self.gaussian_conditional.quantize(y_slice, "symbols", mu)
            done.append(self._refine(i, mean_support, self.gaussian_conditional.dequantize(q, mu)))
        x_hat = self.g_s(torch.cat(done, dim=1)).clamp_(0, 1)
        return {"strings": [*strings, z_strings], "shape": tuple(z.shape[-2:]), "x_hat": x_hat}

    @torch.no_grad()
    def decompress(self, strings: list, shape) -> dict:
        z_hat = self.entropy_bottleneck.decompress(strings[-1], shape)
        means, scales = self.h_mean_s(z_hat), self.h_scale_s(z_hat)
        y_size = (z_hat.shape[2] * 4, z_hat.shape[3] * 4)
        done = []
        for i in range(self.cfg.num_slices):
            mean_support, mu, scale = self._slice_params(i, means, scales, done, y_size)
            index = self.gaussian_conditional.build_indexes(scale)
            y_hat_slice = self.gaussian_conditional.decompress(strings[i], index, means=mu)
            done.append(self._refine(i, mean_support, y_hat_slice))
        return {"x_hat": self.g_s(torch.cat(done, dim=1)).clamp_(0, 1)}
