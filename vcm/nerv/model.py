"""NeRV: a video as a function from frame index to frame (Chen et al., NeurIPS 2021).

t ∈ [0,1) → positional encoding [sin(b^i·π·t), cos(b^i·π·t)]_{i<l}  (2l dims)
  → MLP stem (activation after every layer) → reshape to (C0, h0, w0)
  → NeRV blocks: conv3×3(C_in → C_out·s²) → PixelShuffle(s) → activation
  → 1×1 head to 3 channels → (tanh + 1)/2 → crop to (H, W).

Any resolution: the strides are chosen so that (h0, w0)·Πs covers (H, W) with as little padding
as possible; the decoder output is cropped (never resized) to the frame size.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import torch
from torch import nn

from vcm.nerv.registry import Representation, register_representation
from vcm.schema import refuse_first_broken, strict_from_dict
from vcm.words import noun

ACTIVATIONS = {
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "relu": nn.ReLU,
    "leaky": lambda: nn.LeakyReLU(0.01),
    "sin": None,  # handled by _Sine
}


class _Sine(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(x)


def make_activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        from vcm.errors import VcmError

        raise VcmError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
    return _Sine() if name == "sin" else ACTIVATIONS[name]()


@dataclass(frozen=True)
class NervConfig:
    """Everything needed to rebuild a NeRV network (stored in checkpoints and bitstreams)."""

    height: int
    width: int
    strides: tuple[int, ...]
    grid_h: int
    grid_w: int
    fc_dim: int  # C0, channels of the stem's output grid
    stem_dims: tuple[int, ...] = (512,)
    embed_base: float = 1.25
    embed_levels: int = 80
    expansion: float = 1.0
    reduction: float = 2.0
    lower_width: int = 96
    activation: str = "silu"

    @property
    def padded_size(self) -> tuple[int, int]:
        p = math.prod(self.strides)
        return self.grid_h * p, self.grid_w * p

    def block_widths(self) -> list[int]:
        """Output channels of each NeRV block (reference rule: expand first, then reduce)."""
        widths, c = [], self.fc_dim
        for i, s in enumerate(self.strides):
            if i == 0:
                c = max(int(round(c * self.expansion)), 1)
            else:
                c = max(int(c // (1 if s == 1 else self.reduction)), self.lower_width)
            widths.append(c)
        return widths

    def to_dict(self) -> dict:
        d = asdict(self)
        d["strides"], d["stem_dims"] = list(self.strides), list(self.stem_dims)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "NervConfig":
        """Strictly typed (raises ValueError naming the field): configs also come from bitstreams."""
        return strict_from_dict(cls, d, defaults=False)


def choose_strides(height: int, width: int, min_grid: int = 8, max_stages: int = 6,
                   max_padding: float = 0.0) -> tuple[tuple[int, ...], int, int]:
    """Pick NeRV strides and the initial grid (h0, w0) for an H×W frame.

    Candidates are products of strides in {2, 3, 5} with at most ``max_stages`` blocks and a grid
    whose short side is at least ``min_grid``. Among those that tile the frame exactly (padding at
    most ``max_padding`` of its area), the largest total stride wins (a smaller grid, a smaller
    stem); if none does, the one with the least padding. Strides are ordered large first, as in
    the reference. 832×480 → (2,2,2,2,2) on 15×26; 416×240 → (2,2,2,2) on 15×26;
    1280×720 → (5,2,2,2,2) on 9×16, the reference's own choice.
    """
    cands = []
    for a in range(0, max_stages + 1):
        for b in range(0, max_stages + 1 - a):
            for c in range(0, max_stages + 1 - a - b):
                if a + b + c == 0:
                    continue
                p = 2**a * 3**b * 5**c
                gh, gw = math.ceil(height / p), math.ceil(width / p)
                if min(gh, gw) < min_grid:
                    continue
                pad = (gh * gw * p * p - height * width) / (height * width)
                strides = tuple(sorted([5] * c + [3] * b + [2] * a, reverse=True))
                cands.append((pad, p, strides, gh, gw))
    if not cands:  # tiny frames: one stride-1 block on the full grid
        return (1,), height, width
    ok = [c for c in cands if c[0] <= max_padding + 1e-12]
    # Same total stride from different factorisations: prefer more, smaller stages (finer upsampling).
    best = max(ok, key=lambda c: (c[1], len(c[2]), -c[0])) if ok else min(cands, key=lambda c: (c[0], -c[1]))
    return best[2], best[3], best[4]


class PositionalEncoding(nn.Module):
    """t [B] in [0,1) → [B, 2·levels]: sin(b^i·π·t), cos(b^i·π·t) interleaved per level."""

    def __init__(self, base: float, levels: int):
        super().__init__()
        freqs = torch.tensor([base**i * math.pi for i in range(levels)], dtype=torch.float64)
        self.register_buffer("freqs", freqs.float(), persistent=False)

    @property
    def dim(self) -> int:
        return 2 * self.freqs.numel()

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        phase = t[:, None].float() * self.freqs[None, :]
        return torch.stack([torch.sin(phase), torch.cos(phase)], dim=-1).flatten(1)


class NervBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, activation: str):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out * stride * stride, 3, padding=1)
        self.shuffle = nn.PixelShuffle(stride) if stride > 1 else nn.Identity()
        self.act = make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.shuffle(self.conv(x)))


@register_representation("nerv", NervConfig, default_preset="nerv-s", codec_order=10,
                         limits={"stem_layers": 8, "embed_levels": 1024})
class NeRV(Representation):
    """``forward(t)``: t ``float [B]`` in [0,1) → ``float [B,3,H,W]`` in [0,1]."""

    GROUPS = ("stem", "blocks", "head", "bias")
    PRUNABLE = ("stem", "blocks")  # the reference prunes stem and conv weights, not head or biases

    @staticmethod
    def param_group(name: str) -> str:
        return "bias" if name.endswith(".bias") else name.split(".", 1)[0]

    @staticmethod
    def quant_channels_of(cfg: "NervConfig", name: str, shape: tuple[int, ...]) -> int:
        """Rows quantized with one step each: output channels of conv and hidden Linear weights; the
        stem's last Linear produces the (fc_dim, grid_h, grid_w) grid, so its channels are fc_dim;
        one per bias tensor."""
        if name.endswith(".bias") or len(shape) < 2:
            return 1
        if name.startswith("stem.") and shape[0] == cfg.fc_dim * cfg.grid_h * cfg.grid_w:
            return cfg.fc_dim
        return shape[0]

    @staticmethod
    def count_params(cfg: "NervConfig") -> int:
        return count_params(cfg)

    @staticmethod
    def shape_from_preset(d: dict) -> "NervShape":
        """A preset's model section: widths at unit scale, ``embed: BASE_LEVELS`` (e.g. ``1.25_80``)."""
        unknown = set(d) - _SHAPE_KEYS
        if unknown:
            raise ValueError(f"unknown model {noun(len(unknown), 'option')} {', '.join(sorted(unknown))}; "
                             f"known: arch, params, {', '.join(sorted(_SHAPE_KEYS))}")
        kw = {k: d[k] for k in ("fc_dim", "lower_width", "expansion", "reduction", "activation", "stem_dims") if k in d}
        if "embed" in d:
            kw["embed_base"], kw["embed_levels"] = parse_embed(str(d["embed"]))
        shape = strict_from_dict(NervShape, kw)
        shape.check()
        return shape

    @staticmethod
    def config_for(shape: "NervShape", height: int, width: int, frames: int, params: int | None,
                   shots: tuple[int, ...] = ()) -> "NervConfig":
        """NeRV's config for an H×W clip (its size does not depend on the frame count or shots)."""
        return shape.config(height, width, 1.0) if params is None else solve_for_params(shape, height, width, params)

    @staticmethod
    def scale_widths(cfg: "NervConfig", scale: float) -> "NervConfig":
        """``cfg`` with every width (stem, grid channels, lower width) times ``scale``, at least 1 each."""
        return replace(cfg, fc_dim=max(1, round(cfg.fc_dim * scale)), lower_width=max(1, round(cfg.lower_width * scale)),
                       stem_dims=tuple(max(1, round(d * scale)) for d in cfg.stem_dims))

    @staticmethod
    def check_config(cfg: "NervConfig", limits: dict) -> None:
        """Refuse configs no decoder should build (sizes from a possibly hostile stream)."""
        side, width = limits["side"], limits["width_channels"]
        if not (1 <= len(cfg.strides) <= limits["stages"] and all(1 <= s <= 8 for s in cfg.strides)):
            raise ValueError("strides")
        if not (len(cfg.stem_dims) <= limits["stem_layers"] and all(1 <= d <= width for d in cfg.stem_dims)):
            raise ValueError("stem widths")
        if cfg.activation not in ACTIVATIONS:
            raise ValueError("activation")
        for key in ("embed_base", "expansion", "reduction"):
            if not 0 < getattr(cfg, key) <= 64:
                raise ValueError(key)
        if not (1 <= cfg.height <= side and 1 <= cfg.width <= side and 1 <= cfg.grid_h <= side and 1 <= cfg.grid_w <= side):
            raise ValueError("frame or grid size")
        if not (1 <= cfg.fc_dim <= width and 1 <= cfg.lower_width <= width and 1 <= cfg.embed_levels <= limits["embed_levels"]):
            raise ValueError("widths")
        if (cfg.embed_levels - 1) * math.log(cfg.embed_base) > 69:  # base^(levels-1) > 1e30
            raise ValueError("positional encoding frequencies overflow")
        ph, pw = cfg.padded_size
        if ph < cfg.height or pw < cfg.width or ph > 2 * side or pw > 2 * side:
            raise ValueError("grid and strides do not cover the frame")
        if max(cfg.block_widths()) > width or count_params(cfg) > limits["params"]:
            raise ValueError("implausibly large network")

    @staticmethod
    def frame_bytes(cfg: "NervConfig") -> int:
        """Peak float32 activations of one frame: at each block its input, the conv output and the
        shuffled copy; then the head's input and output (computed from the config, nothing built)."""
        h, w, c = cfg.grid_h, cfg.grid_w, cfg.fc_dim
        peak = c * h * w + max(cfg.stem_dims, default=0)
        for s, c_out in zip(cfg.strides, cfg.block_widths()):
            peak = max(peak, c * h * w + 2 * c_out * s * s * h * w)
            h, w, c = h * s, w * s, c_out
        return 4 * max(peak, (c + 9) * h * w)

    @staticmethod
    def frame_macs(cfg: "NervConfig") -> int:
        """Multiply–accumulates to decode one frame (computed from the config): the stem's Linear
        layers, each block's 3×3 convolution to C_out·s² channels at its input resolution, the 1×1 head."""
        macs, d = 0, 2 * cfg.embed_levels
        for dim in (*cfg.stem_dims, cfg.fc_dim * cfg.grid_h * cfg.grid_w):
            macs += d * dim
            d = dim
        h, w, c = cfg.grid_h, cfg.grid_w, cfg.fc_dim
        for s, c_out in zip(cfg.strides, cfg.block_widths()):
            macs += 9 * c * c_out * s * s * h * w
            h, w, c = h * s, w * s, c_out
        return macs + 3 * c * h * w

    def __init__(self, cfg: NervConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = PositionalEncoding(cfg.embed_base, cfg.embed_levels)
        layers, d = [], self.embed.dim
        for dim in (*cfg.stem_dims, cfg.fc_dim * cfg.grid_h * cfg.grid_w):
            layers += [nn.Linear(d, dim), make_activation(cfg.activation)]
            d = dim
        self.stem = nn.Sequential(*layers)
        blocks, c = [], cfg.fc_dim
        for s, c_out in zip(cfg.strides, cfg.block_widths()):
            blocks.append(NervBlock(c, c_out, s, cfg.activation))
            c = c_out
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(c, 3, 1)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        x = self.stem(self.embed(t)).view(-1, cfg.fc_dim, cfg.grid_h, cfg.grid_w)
        for block in self.blocks:
            x = block(x)
        x = (torch.tanh(self.head(x)) + 1) * 0.5
        return x[:, :, : cfg.height, : cfg.width]


def count_params(cfg: NervConfig) -> int:
    """Parameters of ``NeRV(cfg)``, computed without building it."""
    n, d = 0, 2 * cfg.embed_levels
    for dim in (*cfg.stem_dims, cfg.fc_dim * cfg.grid_h * cfg.grid_w):
        n += d * dim + dim
        d = dim
    c = cfg.fc_dim
    for s, c_out in zip(cfg.strides, cfg.block_widths()):
        n += c * c_out * s * s * 9 + c_out * s * s
        c = c_out
    return n + c * 3 + 3


@dataclass(frozen=True)
class NervShape:
    """A preset's architecture at unit scale; ``scaled(k)`` multiplies every width by k."""

    fc_dim: int = 64
    stem_dims: tuple[int, ...] = (512,)
    lower_width: int = 96
    expansion: float = 1.0
    reduction: float = 2.0
    embed_base: float = 1.25
    embed_levels: int = 80
    activation: str = "silu"
    extra: dict = field(default_factory=dict)

    def check(self) -> None:
        """Refuse a shape no network can be built from (ValueError naming the field)."""
        rules = [("fc_dim", 1 <= self.fc_dim <= 4096, "a whole number from 1 to 4096"),
                 ("stem_dims", 1 <= len(self.stem_dims) <= 8 and all(1 <= c <= 8192 for c in self.stem_dims),
                  "1 to 8 widths, each from 1 to 8192"),
                 ("lower_width", 1 <= self.lower_width <= 4096, "a whole number from 1 to 4096"),
                 ("expansion", 0 < self.expansion <= 16, "above 0 and at most 16"),
                 ("reduction", 1 <= self.reduction <= 16, "from 1 to 16"),
                 ("embed_base", 1 < self.embed_base <= 4, "above 1 and at most 4 (embed: BASE_LEVELS)"),
                 ("embed_levels", 1 <= self.embed_levels <= 256, "from 1 to 256 (embed: BASE_LEVELS)"),
                 ("activation", self.activation in ACTIVATIONS, " or ".join(ACTIVATIONS))]
        refuse_first_broken("nerv model option", self, rules)

    def config(self, height: int, width: int, scale: float = 1.0) -> NervConfig:
        strides, gh, gw = choose_strides(height, width)
        return NervConfig(
            height=height, width=width, strides=strides, grid_h=gh, grid_w=gw,
            fc_dim=max(1, round(self.fc_dim * scale)),
            stem_dims=tuple(max(1, round(d * scale)) for d in self.stem_dims),
            embed_base=self.embed_base, embed_levels=self.embed_levels,
            expansion=self.expansion, reduction=self.reduction,
            lower_width=max(1, round(self.lower_width * scale)), activation=self.activation,
        )


def solve_for_params(shape: NervShape, height: int, width: int, budget: int) -> NervConfig:
    """The largest common width scale whose parameter count stays within ``budget``."""
    lo, hi = 1e-3, 1.0
    while count_params(shape.config(height, width, hi)) <= budget and hi < 1e4:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        if count_params(shape.config(height, width, mid)) <= budget:
            lo = mid
        else:
            hi = mid
    cfg = _fill_budget(shape.config(height, width, lo), budget)
    if count_params(cfg) > budget:
        from vcm.errors import VcmError

        raise VcmError(f"no NeRV of this shape fits in {budget} parameters at {width}x{height}")
    return cfg


def _fill_budget(cfg: NervConfig, budget: int) -> NervConfig:
    """Widen one width at a time (grid channels, stem layers, lower width) while under budget.

    Rounding a common scale leaves up to ~20 % of a small budget unused; this closes the gap.
    """
    while True:
        options = [replace(cfg, fc_dim=cfg.fc_dim + 1), replace(cfg, lower_width=cfg.lower_width + 1)]
        for i in range(len(cfg.stem_dims)):
            dims = list(cfg.stem_dims)
            dims[i] += 1
            options.append(replace(cfg, stem_dims=tuple(dims)))
        now = count_params(cfg)
        # Only options that add parameters: a width that changes nothing (e.g. lower_width below the
        # block widths) would otherwise be widened forever.
        fitting = [c for c in options if now < count_params(c) <= budget]
        if not fitting:
            return cfg
        cfg = min(fitting, key=lambda c: budget - count_params(c))


_SHAPE_KEYS = {"fc_dim", "stem_dims", "lower_width", "expansion", "reduction", "activation", "embed"}


def parse_embed(text: str) -> tuple[float, int]:
    """``"1.25_80"`` → (1.25, 80)."""
    try:
        base, levels = text.split("_")
        return float(base), int(levels)
    except ValueError:
        raise ValueError(f"embed must look like BASE_LEVELS (e.g. 1.25_80), got {text!r}") from None


MAX_PARAMS = 1 << 27  # the most parameters a network may have: what a .nerv stream's decoder accepts


def parse_param_count(text: str, name: str = "--params") -> int:
    """``"0.3M"``, ``"50k"``, ``"120000"`` → integer parameter count (``name``: what the error calls it)."""
    t = str(text).strip().lower().replace("_", "")
    mult = {"k": 1e3, "m": 1e6, "g": 1e9}.get(t[-1:], 1)
    try:
        value = float(t[:-1] if t[-1:] in "kmg" else t) * mult
        if value != value:  # NaN
            raise ValueError
    except ValueError:
        from vcm.errors import VcmError

        raise VcmError(f"{name} must look like 0.3M, 50k or 120000, got {text!r}") from None
    if value < 100:
        from vcm.errors import VcmError

        raise VcmError(f"{name} {text} is too small for a network (at least 100 parameters)")
    if value > MAX_PARAMS:  # inf was an OverflowError here
        from vcm.errors import VcmError

        raise VcmError(f"{name} {text} is more than a .nerv stream holds ({MAX_PARAMS:,} parameters)")
    return int(value)

