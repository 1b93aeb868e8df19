"""A hierarchical grid-based NeRV in the manner of HiNeRV (Kwan et al., NeurIPS 2023).

    t ∈ [0,1) ─► base features: learned temporal grids, L levels (level l has T_g·2^l frames and
                 C_g / 2^l channels, all at the coarse size h0 × w0), linearly interpolated at t
                 and concatenated                                   → [B, ΣC_l, h0, w0]
             ─► stage i = 1 … S:  1×1 conv to C_i → bilinear upsampling ×s_i
                                  + local temporal grid (T_loc × C_i × s_i × s_i, interpolated at t,
                                    tiled over every upsampled cell)
                                  → d_i ConvNeXt blocks (depthwise k×k, LayerNorm, 1×1 ×e, GELU, 1×1, residual)
             ─► 1×1 head → (tanh + 1) / 2 → crop to (H, W)          → [B, 3, H, W]

Parameters sit mostly in the grids, which the compression methods quantize and entropy-code like
any weight. Frame positions between grid frames are interpolated, so any t in [0, 1) decodes.
The strides are chosen from the frame size as for NeRV (padding then cropping, never resizing).
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, fields, replace

import torch
import torch.nn.functional as F
from torch import nn

from vcm.nerv.registry import Representation, register_representation
from vcm.schema import refuse_first_broken, strict_from_dict
from vcm.words import noun


@dataclass(frozen=True)
class HinervConfig:
    """Everything needed to rebuild a HiNeRV network (stored in checkpoints and bitstreams)."""

    height: int
    width: int
    strides: tuple[int, ...]  # upsampling factor of each stage
    grid_h: int  # coarse size h0 × w0 of the base grids
    grid_w: int
    grid_frames: int  # T_g: frames of the base grid's level 0
    grid_channels: int  # C_g: channels of level 0
    grid_levels: int  # L
    channels: tuple[int, ...]  # C_i of each stage
    depths: tuple[int, ...]  # ConvNeXt blocks of each stage
    local_frames: int = 0  # T_loc of the per-stage local grids (0: none)
    expansion: float = 4.0
    kernel: int = 3
    head: str = "pointwise"  # or "subpixel": the last stride is a 3×3 conv to 3·s² channels + PixelShuffle
    shots: tuple[int, ...] = ()  # frames of each shot of a clip with scene cuts; (): grid frames placed over the clip

    @property
    def stage_strides(self) -> tuple[int, ...]:
        """Strides of the stages (the sub-pixel head takes the last one)."""
        return self.strides[:-1] if self.head == "subpixel" else self.strides

    @property
    def padded_size(self) -> tuple[int, int]:
        p = math.prod(self.strides)
        return self.grid_h * p, self.grid_w * p

    def level_shapes(self) -> list[tuple[int, int]]:
        """(frames, channels) of each base-grid level."""
        return [(self.grid_frames * 2**lvl, max(1, self.grid_channels // 2**lvl)) for lvl in range(self.grid_levels)]

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in ("strides", "channels", "depths"):
            d[key] = list(d[key])
        if self.shots:
            d["shots"] = list(self.shots)
        else:  # a network whose shape does not follow shots is described exactly as before they existed
            del d["shots"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "HinervConfig":
        """Strictly typed (raises ValueError naming the field): configs also come from bitstreams.
        Every field is required except ``shots`` (absent: grid frames placed as before shots existed)."""
        return strict_from_dict(cls, {"shots": [], **d} if isinstance(d, dict) else d, defaults=False)


def _interpolate(grid: torch.Tensor, t: torch.Tensor, shots: tuple[int, ...] = ()) -> torch.Tensor:
    """Linear interpolation of ``grid [T_g, …]`` at times ``t [B]`` in [0, 1) → ``[B, …]``.

    Frame i of a T-frame video has t = i / T. Without ``shots`` grid frame k sits at t = k / T_g, so
    when T_g = T every frame lands on its own grid frame, and the frames after the last grid frame
    repeat it. With ``shots`` (frames per shot, summing to T; one shot for a clip without cuts) each
    shot owns a run of grid frames in proportion to its length, spread from its first frame to its
    last, and interpolates only within it: the frames on either side of a scene cut share no grid
    frame, and no frame lies beyond its shot's last grid frame.
    """
    frames = grid.shape[0]
    counts = _grid_frames_per_shot(frames, shots)
    if counts is None:
        pos = (t.float() * frames).clamp(0, frames - 1)
        i0 = pos.floor().long().clamp(max=frames - 1)
        i1 = (i0 + 1).clamp(max=frames - 1)
    else:
        lengths, starts, count, first = _shot_tables(frames, shots, t.device)
        video = t.float() * sum(shots)  # fractional video frame
        shot = (torch.searchsorted(starts, video + 1e-3, right=True) - 1).clamp(0, len(shots) - 1)
        spacing = (lengths[shot] - 1).clamp(min=1) / (count[shot] - 1).clamp(min=1)  # video frames per grid frame
        within = torch.minimum(((video - starts[shot]) / spacing).clamp(min=0), count[shot] - 1)
        pos = first[shot] + within
        last = (first[shot] + count[shot] - 1).long()
        i0 = torch.minimum(pos.floor().long(), last)
        i1 = torch.minimum(i0 + 1, last)
    w = (pos - i0.float()).view(-1, *([1] * (grid.dim() - 1)))
    # index_select, not grid[i0]: the latter's gradient sums frames that share a grid frame with atomic adds in the
    # order the threads run (a fit on two threads was not repeatable); on one thread the two are equal
    return torch.index_select(grid, 0, i0) * (1 - w) + torch.index_select(grid, 0, i1) * w


@functools.lru_cache(maxsize=64)
def _shot_tables(frames: int, shots: tuple[int, ...], device: torch.device) -> tuple[torch.Tensor, ...]:
    """Float tensors of each shot's length, first video frame, grid frames and first grid frame
    (built once per grid size, not on every forward)."""
    lengths = torch.tensor(shots, dtype=torch.float32, device=device)
    count = torch.tensor(_grid_frames_per_shot(frames, shots), dtype=torch.float32, device=device)
    return lengths, torch.cumsum(lengths, 0) - lengths, count, torch.cumsum(count, 0) - count


@functools.lru_cache(maxsize=64)
def _grid_frames_per_shot(frames: int, shots: tuple[int, ...]) -> tuple[int, ...] | None:
    """How a grid's ``frames`` are shared among ``shots`` (in proportion to their lengths, at least one
    each, largest remainders first); None without shots or with too few grid frames to share."""
    if not shots or frames < len(shots):
        return None
    total = sum(shots)
    ideal = [frames * n / total for n in shots]
    counts = [max(1, math.floor(x)) for x in ideal]
    while sum(counts) > frames:  # the minimum of one frame each overshot: take from the largest share
        i = max((i for i in range(len(counts)) if counts[i] > 1), key=lambda i: counts[i] - ideal[i])
        counts[i] -= 1
    while sum(counts) < frames:
        i = max(range(len(counts)), key=lambda i: ideal[i] - counts[i])
        counts[i] += 1
    return tuple(counts)


class Pointwise(nn.Module):
    """A 1×1 convolution on channels-last features ``[B, H, W, C_in] → [B, H, W, C_out]``: one GEMM
    over all pixels with the bias inside it. Weight ``[C_out, C_in]`` (a 1×1 convolution's, squeezed)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        conv = nn.Conv2d(c_in, c_out, 1)  # the same initialisation as a 1×1 convolution
        self.weight = nn.Parameter(conv.weight.detach()[:, :, 0, 0].clone())
        self.bias = nn.Parameter(conv.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


def _as_nchw(x: torch.Tensor) -> torch.Tensor:
    """``[B, H, W, C]`` → the same memory seen as ``[B, C, H, W]`` (channels-last strides: no copy)."""
    return x.permute(0, 3, 1, 2)


def _as_nhwc(x: torch.Tensor) -> torch.Tensor:
    """``[B, C, H, W]`` → ``[B, H, W, C]``, contiguous (no copy when the strides are already channels-last)."""
    return x.permute(0, 2, 3, 1).contiguous()


class ChannelNorm(nn.Module):
    """LayerNorm's parameters for ``ConvNeXtBlock`` (a wrapper so their names stay
    ``….norm.norm.weight`` / ``.bias``, as in every checkpoint and stream written so far)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)


class ConvNeXtBlock(nn.Module):
    """``[B, H, W, C] → [B, H, W, C]``: depthwise k×k, LayerNorm, 1×1 to C·e, GELU, 1×1 back, residual."""

    def __init__(self, channels: int, expansion: float, kernel: int):
        super().__init__()
        hidden = max(1, round(channels * expansion))
        self.dw = nn.Conv2d(channels, channels, kernel, padding=kernel // 2, groups=channels)
        self.norm = ChannelNorm(channels)
        self.pw1 = Pointwise(channels, hidden)
        self.pw2 = Pointwise(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = _as_nhwc(self.dw(_as_nchw(x)))
        norm = self.norm.norm
        y = F.layer_norm(y, norm.normalized_shape, eps=norm.eps)
        # LayerNorm's affine runs inside the first 1×1, exactly: W·(γ·n + β) + b = (W·diag γ)·n + (W·β + b).
        # It saves a pass over the pixels and LayerNorm's slow affine backward (a third of its time at C ≤ 32).
        weight = self.pw1.weight * norm.weight
        bias = torch.addmv(self.pw1.bias, self.pw1.weight, norm.bias)
        return x + self.pw2(F.gelu(F.linear(y, weight, bias)))


class Stage(nn.Module):
    """``[B, h, w, C_in] → [B, h·s, w·s, C_out]`` for stride s."""

    def __init__(self, c_in: int, c_out: int, stride: int, depth: int, local_frames: int, expansion: float, kernel: int,
                 shots: tuple[int, ...] = ()):
        super().__init__()
        self.stride = stride
        self.shots = shots
        self.proj = Pointwise(c_in, c_out)
        self.local = nn.Parameter(torch.zeros(local_frames, c_out, stride, stride)) if local_frames else None
        self.blocks = nn.Sequential(*[ConvNeXtBlock(c_out, expansion, kernel) for _ in range(depth)])

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # Projecting first is exact (both maps are linear and bilinear weights sum to 1) and cheaper:
        # the 1×1 runs at the low resolution and fewer channels are upsampled.
        return self.blocks(self._upsample(self.proj(x), t, self.local))

    def forward_into(self, x: torch.Tensor, t: torch.Tensor, head: Pointwise) -> torch.Tensor:
        """``head(self(x, t))`` for a stage without blocks, ``[B, h, w, C_in] → [B, h·s, w·s, C_head]``.

        With no block in between, projection, upsampling, local grid and head are all linear (bilinear
        weights sum to 1), so the head moves ahead of the upsampling, exactly: one 1×1 from C_in to the
        head's channels at the low resolution, and only those few channels upsampled and added to at the
        high one (on bikes 640×272 about a tenth of a training step)."""
        weight = head.weight @ self.proj.weight
        bias = torch.addmv(head.bias, head.weight, self.proj.bias)
        local = None if self.local is None else torch.einsum("oc,tcij->toij", head.weight, self.local)
        return self._upsample(F.linear(x, weight, bias), t, local)

    def _upsample(self, x: torch.Tensor, t: torch.Tensor, local: torch.Tensor | None) -> torch.Tensor:
        """``[B, h, w, C] → [B, h·s, w·s, C]``: bilinear ×s, plus the local grid ``[T_loc, C, s, s]`` at t."""
        s = self.stride
        if s > 1:
            x = _as_nhwc(F.interpolate(_as_nchw(x), scale_factor=s, mode="bilinear", align_corners=False))
        if local is not None:
            # the local grid [B, C, s, s] tiles every s×s cell: a broadcast add, no tiled copy
            b, h, w, c = x.shape
            local = _interpolate(local, t, self.shots).permute(0, 2, 3, 1)  # [B, s, s, C]
            x = (x.view(b, h // s, s, w // s, s, c) + local[:, None, :, None]).view(b, h, w, c)
        return x


@register_representation("hinerv", HinervConfig, default_preset="hinerv-demo", codec_order=20)
class HiNeRV(Representation):
    """``forward(t)``: t ``float [B]`` in [0,1) → ``float [B,3,H,W]`` in [0,1]."""

    GROUPS = ("grids", "stages", "head", "bias")
    PRUNABLE = ("stages",)  # conv weights; grids, norms and head stay dense

    def __init__(self, cfg: HinervConfig):
        super().__init__()
        self.cfg = cfg
        self.grids = nn.ParameterList([
            nn.Parameter(torch.empty(frames, channels, cfg.grid_h, cfg.grid_w).uniform_(-1e-2, 1e-2))
            for frames, channels in cfg.level_shapes()])
        stages, c = [], sum(ch for _, ch in cfg.level_shapes())
        for s, c_out, depth in zip(cfg.stage_strides, cfg.channels, cfg.depths):
            stages.append(Stage(c, c_out, s, depth, cfg.local_frames, cfg.expansion, cfg.kernel, cfg.shots))
            c = c_out
        self.stages = nn.ModuleList(stages)
        if cfg.head == "subpixel":
            last = cfg.strides[-1]
            self.head = nn.Sequential(nn.Conv2d(c, 3 * last * last, 3, padding=1), nn.PixelShuffle(last))
        else:
            self.head = Pointwise(c, 3)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        # Features run channels-last ([B, H, W, C]) between the grids and the head: the 1×1 layers are
        # then plain GEMMs, LayerNorm needs no permute, and the depthwise convolutions take mkldnn's
        # channels-last path (on 2 CPU cores a block's forward + backward is ~12 % faster).
        x = _as_nhwc(torch.cat([_interpolate(g, t, self.cfg.shots) for g in self.grids], dim=1))
        *stages, last = self.stages
        for stage in stages:
            x = stage(x, t)
        if self.folds_head(self.cfg):
            x = last.forward_into(x, t, self.head).permute(0, 3, 1, 2)
        else:
            x = last(x, t)
            x = self.head(x).permute(0, 3, 1, 2) if self.cfg.head == "pointwise" else self.head(_as_nchw(x))
        x = x[:, :, : self.cfg.height, : self.cfg.width].contiguous()
        return (torch.tanh(x) + 1) * 0.5

    @staticmethod
    def folds_head(cfg: HinervConfig) -> bool:
        """Whether the 1×1 head runs ahead of the last stage's upsampling (``Stage.forward_into``)."""
        return cfg.head == "pointwise" and cfg.depths[-1] == 0

    @staticmethod
    def param_group(name: str) -> str:
        if name.startswith("grids.") or name.endswith(".local"):
            return "grids"
        if name.startswith("head."):
            return "bias" if name.endswith(".bias") else "head"
        if name.endswith(".bias") or ".norm." in name:
            return "bias"
        return name.split(".", 1)[0]

    @classmethod
    def stream_part(cls, name: str) -> str:
        """The base grids (the input's temporal grids) apart from each stage's local grids."""
        if name.startswith("grids."):
            return "base grids"
        return "local grids" if name.endswith(".local") else super().stream_part(name)

    @staticmethod
    def quant_channels_of(cfg: HinervConfig, name: str, shape: tuple[int, ...]) -> int:
        """Grids: one step per grid frame (the first axis); conv weights: output channels; biases
        and norm parameters: one per tensor."""
        if len(shape) < 2 or name.endswith(".bias") or ".norm." in name:
            return 1
        return shape[0]

    @staticmethod
    def temporal_of(cfg: HinervConfig, name: str, shape: tuple[int, ...]) -> bool:
        """Base and local grids ``[T, …]``: their frames are points in time."""
        return name.startswith("grids.") or name.endswith(".local")

    @staticmethod
    def frame_bytes(cfg: HinervConfig) -> int:
        """Peak float32 activations of one frame (computed from the config, nothing built): per stage
        the projection and upsampling at both resolutions, then a ConvNeXt block's input, depthwise and
        norm outputs and two expanded hidden tensors; then the head."""
        h, w = cfg.grid_h, cfg.grid_w
        c = sum(ch for _, ch in cfg.level_shapes())
        peak = c * h * w
        for s, c_out, depth in zip(cfg.stage_strides, cfg.channels, cfg.depths):
            hidden = max(1, round(c_out * cfg.expansion))
            peak = max(peak, (c + c_out) * h * w + c_out * h * w * (1 + s * s))
            h, w, c = h * s, w * s, c_out
            if depth:
                peak = max(peak, (4 * c + 2 * hidden) * h * w)
        s = cfg.strides[-1] if cfg.head == "subpixel" else 1
        return 4 * max(peak, (c + 9 * s * s) * h * w)

    @staticmethod
    def frame_macs(cfg: HinervConfig) -> int:
        """Multiply–accumulates to decode one frame (computed from the config): per stage the 1×1
        projection at the low resolution, then per ConvNeXt block the depthwise k×k and both 1×1
        layers at the high one; then the head (a last stage without blocks takes the head into its
        projection: 3·C_in per low-resolution pixel). Grid interpolation, upsampling and norms are a few
        operations per element and are left out."""
        h, w = cfg.grid_h, cfg.grid_w
        c = sum(ch for _, ch in cfg.level_shapes())
        macs = 0
        stages = list(zip(cfg.stage_strides, cfg.channels, cfg.depths))
        for s, c_out, depth in stages[:-1] if HiNeRV.folds_head(cfg) else stages:
            hidden = max(1, round(c_out * cfg.expansion))
            macs += c * c_out * h * w
            h, w, c = h * s, w * s, c_out
            macs += depth * (cfg.kernel ** 2 * c + 2 * c * hidden) * h * w
        if cfg.head == "subpixel":
            s = cfg.strides[-1]
            return macs + 9 * c * 3 * s * s * h * w
        return macs + 3 * c * h * w  # folded: at the last stage's input

    @staticmethod
    def count_params(cfg: HinervConfig) -> int:
        with torch.device("meta"):
            return sum(p.numel() for p in HiNeRV(cfg).parameters())

    @staticmethod
    def shape_from_preset(d: dict) -> "HinervShape":
        """A preset's model section: the fields of :class:`HinervShape`."""
        known = {f.name for f in fields(HinervShape)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown hinerv model {noun(len(unknown), 'option')} {', '.join(sorted(unknown))}; "
                             f"known: arch, params, {', '.join(sorted(known))}")
        shape = strict_from_dict(HinervShape, d)
        shape.check()
        return shape

    @staticmethod
    def config_for(shape: "HinervShape", height: int, width: int, frames: int, params: int | None,
                   shots: tuple[int, ...] = ()) -> HinervConfig:
        """The config for an H×W clip of ``frames`` frames (``shots``: its shots, for a shape that follows them)."""
        if params is None:
            return shape.config(height, width, frames, 1.0, shots)
        return solve_for_params(shape, height, width, frames, params, shots)

    @staticmethod
    def scale_widths(cfg: HinervConfig, scale: float) -> HinervConfig:
        """``cfg`` with its stages' widths and its base-grid channels times ``scale`` (at least 1 each);
        grid sizes and frame counts stay."""
        return replace(cfg, channels=tuple(max(1, round(c * scale)) for c in cfg.channels),
                       grid_channels=max(1, round(cfg.grid_channels * scale)))

    @staticmethod
    def check_config(cfg: HinervConfig, limits: dict) -> None:
        """Refuse configs no decoder should build (sizes from a possibly hostile stream)."""
        side, width = limits["side"], limits["width_channels"]
        if cfg.head not in ("pointwise", "subpixel"):
            raise ValueError("head")
        n = len(cfg.stage_strides)
        if not (1 <= len(cfg.strides) <= limits["stages"] and len(cfg.channels) == n and len(cfg.depths) == n):
            raise ValueError("stages")
        if not all(1 <= s <= 8 for s in cfg.strides) or not all(0 <= d <= 16 for d in cfg.depths):
            raise ValueError("strides or depths")
        if not all(1 <= c <= width for c in cfg.channels) or not 1 <= cfg.grid_channels <= width:
            raise ValueError("widths")
        if not (1 <= cfg.grid_levels <= 8 and 1 <= cfg.grid_frames <= limits["frames"]
                and cfg.grid_frames * 2 ** (cfg.grid_levels - 1) <= limits["frames"] and 0 <= cfg.local_frames <= limits["frames"]):
            raise ValueError("grid frames")
        if not (0 < cfg.expansion <= 16 and cfg.kernel in (1, 3, 5, 7)):
            raise ValueError("expansion or kernel")
        if cfg.shots and not all(1 <= n <= 1_000_000 for n in cfg.shots):
            raise ValueError("shots")
        if not (1 <= cfg.height <= side and 1 <= cfg.width <= side and 1 <= cfg.grid_h <= side and 1 <= cfg.grid_w <= side):
            raise ValueError("frame or grid size")
        ph, pw = cfg.padded_size
        if ph < cfg.height or pw < cfg.width or ph > 2 * side or pw > 2 * side:
            raise ValueError("grid and strides do not cover the frame")
        grid = sum(f * c for f, c in cfg.level_shapes()) * cfg.grid_h * cfg.grid_w
        local = cfg.local_frames * sum(c * s * s for c, s in zip(cfg.channels, cfg.stage_strides))
        convs = sum(c * c * (2 * cfg.expansion + 1) * d for c, d in zip(cfg.channels, cfg.depths))
        if grid + local + convs > limits["params"]:
            raise ValueError("implausibly large network")


@dataclass(frozen=True)
class HinervShape:
    """A preset's HiNeRV at unit scale; ``config(H, W, T, k)`` multiplies channel widths by k.

    Grid sizes in time are fractions of the frame count (``grid_frame_ratio``: base grid frames per
    video frame; ``local_frame_ratio`` likewise for the local grids).
    """

    grid_channels: int = 32
    grid_levels: int = 2
    grid_frame_ratio: float = 0.25
    channels: tuple[int, ...] = (64, 48, 32, 16)  # widths of the stages, the last ones reused if more stages
    depths: tuple[int, ...] = (1, 1, 1, 1)
    local_frame_ratio: float = 0.125
    expansion: float = 4.0
    kernel: int = 3
    min_grid: int = 8  # shortest side of the base grid (a larger one means fewer, cheaper upsampling stages)
    head: str = "pointwise"  # "subpixel": the last upsampling is a 3×3 conv + PixelShuffle (per-pixel detail)
    scene_cuts: bool = False  # a clip with cuts: grid frames per shot, each run spread over its shot end to end

    def check(self) -> None:
        """Refuse a shape no network can be built from (ValueError naming the field), before a budget is
        solved for it: with no grid level, for one, grid channels cost nothing, and the solver added them one at a
        time up to the budget (minutes)."""
        rules = [("grid_channels", 1 <= self.grid_channels <= 4096, "a whole number from 1 to 4096"),
                 ("grid_levels", 1 <= self.grid_levels <= 8, "a whole number from 1 to 8"),
                 ("grid_frame_ratio", 0 < self.grid_frame_ratio <= 1, "above 0 and at most 1 (grid frames per video frame)"),
                 ("channels", 1 <= len(self.channels) <= 8 and all(1 <= c <= 4096 for c in self.channels),
                  "1 to 8 widths, each from 1 to 4096"),
                 ("depths", 1 <= len(self.depths) <= 8 and all(0 <= n <= 16 for n in self.depths),
                  "1 to 8 block counts, each from 0 to 16"),
                 ("local_frame_ratio", 0 <= self.local_frame_ratio <= 1, "from 0 (no local grids) to 1"),
                 ("expansion", 0 < self.expansion <= 16, "above 0 and at most 16"),
                 ("kernel", self.kernel in (1, 3, 5, 7), "1, 3, 5 or 7"),
                 ("min_grid", 1 <= self.min_grid <= 1024, "a whole number from 1 to 1024"),
                 ("head", self.head in ("pointwise", "subpixel"), "pointwise or subpixel")]
        refuse_first_broken("hinerv model option", self, rules)

    def config(self, height: int, width: int, frames: int, scale: float = 1.0,
               shots: tuple[int, ...] = ()) -> HinervConfig:
        """The network for an H×W clip of ``frames`` frames; ``shots`` (frames per shot, from
        ``vcm.video.shots``) is kept only when this shape follows scene cuts and there is a cut: a
        clip without one is placed as always (spreading its grid frames end to end instead measured
        3 to 7 BD-rate points worse on carphone)."""
        from vcm.nerv.model import choose_strides

        strides, gh, gw = choose_strides(height, width, min_grid=self.min_grid)
        n = len(strides) - (self.head == "subpixel" and len(strides) > 1)
        head = self.head if len(strides) > 1 else "pointwise"
        widths = [self.channels[min(i, len(self.channels) - 1)] for i in range(n)]
        depths = [self.depths[min(i, len(self.depths) - 1)] for i in range(n)]
        return HinervConfig(
            height=height, width=width, strides=tuple(strides), grid_h=gh, grid_w=gw,
            grid_frames=max(1, round(frames * self.grid_frame_ratio)),
            grid_channels=max(1, round(self.grid_channels * scale)), grid_levels=self.grid_levels,
            channels=tuple(max(1, round(c * scale)) for c in widths), depths=tuple(depths),
            local_frames=max(1, round(frames * self.local_frame_ratio)) if self.local_frame_ratio > 0 else 0,
            expansion=self.expansion, kernel=self.kernel, head=head,
            shots=tuple(shots) if self.scene_cuts and len(shots) > 1 else (),
        )


def solve_for_params(shape: HinervShape, height: int, width: int, frames: int, budget: int,
                     shots: tuple[int, ...] = ()) -> HinervConfig:
    """The largest common width scale whose parameter count stays within ``budget``; then what
    rounding left, one step at a time while it fits: base-grid channels, base-grid frames, local-grid
    frames (frames are capped by the video's); then whatever is still left widens the stages together.
    A grid channel can be a tenth of the budget; grid frames cost nothing per epoch (grids are
    interpolated), wider stages do, so they come last."""
    from vcm.errors import VcmError

    count = HiNeRV.count_params
    k = _largest_scale(lambda k: count(shape.config(height, width, frames, k)), budget)
    cfg = shape.config(height, width, frames, k, shots)
    if count(cfg) > budget:
        raise VcmError(f"no HiNeRV of this shape fits in {budget} parameters at {width}x{height}, {frames} frames")
    top = 2 ** (cfg.grid_levels - 1)  # the finest level has grid_frames · top frames
    steps = [("grid_channels", budget), ("grid_frames", frames // top)] + [("local_frames", frames)] * bool(cfg.local_frames)
    for field, limit in steps:
        while getattr(cfg, field) < limit and count(wider := replace(cfg, **{field: getattr(cfg, field) + 1})) <= budget:
            cfg = wider
    grids = {field: getattr(cfg, field) for field, _ in steps}

    def stages_at(k2: float) -> HinervConfig:
        return replace(shape.config(height, width, frames, k2, shots), **grids)

    return stages_at(_largest_scale(lambda k2: count(stages_at(k2)), budget, lo=k))


def _largest_scale(count_at, budget: int, lo: float = 1e-3) -> float:
    """The largest scale k ≥ ``lo`` (40 bisections) with ``count_at(k) ≤ budget``, for a count that
    does not decrease with k; ``lo`` itself when nothing larger fits."""
    hi = max(1.0, 2 * lo)
    while count_at(hi) <= budget and hi < 1e4:
        hi *= 2
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if count_at(mid) <= budget else (lo, mid)
    return lo
