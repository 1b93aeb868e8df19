"""Registry of video representations (networks ``frame index → frame``), as timm's ``create_model``.

A representation is an ``nn.Module`` class registered under a name with its config dataclass, the
preset ``vcm fit --arch NAME`` fits, where its CTC codecs sort and any stream limits of its own::

    @register_representation("nerv", NervConfig, default_preset="nerv-s", codec_order=10,
                             limits={"stem_layers": 8, "embed_levels": 1024})
    class NeRV(Representation): ...

Every class provides, beside ``forward(t: float [B]) → float [B,3,H,W]`` in [0, 1]:

- ``cfg``: its config (``to_dict()`` / ``from_dict()``; stored in checkpoints and bitstreams);
- ``GROUPS``: tensor group names (bit depths of the paper's pipeline are set per group);
- ``param_group(name)`` (static): the group of a parameter;
- ``quant_channels_of(cfg, name, shape)`` (static): rows of the parameter quantized with one step
  each (a decoder knows them from the config alone);
- ``prunable(name)``: whether global magnitude pruning may zero it;
- ``temporal_of(cfg, name, shape)`` (static, optional): whether the tensor's first axis is time (its
  neighbouring slices alike), so that rate–distortion coding codes it as differences along time;
- ``count_params(cfg)`` (static) and ``check_config(cfg, limits)`` (static: raises ``ValueError``
  for a config no decoder should build, e.g. from a hostile bitstream);
- ``frame_bytes(cfg)`` (static): an upper estimate of the float32 activations alive while one
  frame is decoded (the decoder's memory budget is checked with it before anything is built);
- ``frame_macs(cfg)`` (static): multiply–accumulates to decode one frame (convolutions and
  matmuls), from which a decode's work and time are known before it starts.
- ``stream_part(name)`` (static; the base class derives it from ``param_group``): the part of a
  stream a parameter's bytes are counted in (``vcm compress``'s byte breakdown), one of ``PARTS``;
- ``shape_from_preset(section)`` (static): the shape a preset's ``model`` section describes (without
  ``arch`` and ``params``), refusing unknown keys with ``ValueError``;
- ``config_for(shape, height, width, frames, params, shots)`` (static): the config of that shape for
  a clip, its widths solved for ``params`` parameters (None: the shape as it is).
- ``scale_widths(cfg, scale)`` (static): ``cfg`` with its widths (not its sizes or frame counts) times
  ``scale`` (a fit's ``width_scale``).

Subclassing :class:`Representation` gives the instance conveniences. The CTC codecs (``NAME`` with
the NeRV loss, ``sa-NAME`` with the SA-NeRV loss) are registered from this registry.

Adding a representation = one module with one decorated class + its module in ``_REGISTRY``, or, from another
installed package, its module named in the entry-point group ``vcm.representations``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from vcm.registry import Registry


class Representation(nn.Module):
    """Base class: instance forms of the static layout rules."""

    ARCH = ""
    GROUPS: tuple[str, ...] = ()

    def quant_channels(self, name: str, shape: tuple[int, ...]) -> int:
        return self.quant_channels_of(self.cfg, name, shape)

    def temporal(self, name: str, shape: tuple[int, ...]) -> bool:
        return self.temporal_of(self.cfg, name, shape)

    @staticmethod
    def temporal_of(cfg, name: str, shape: tuple[int, ...]) -> bool:
        return False

    @classmethod
    def stream_part(cls, name: str) -> str:
        """``grids`` (the representation's grids), ``biases/norms`` or ``weights`` (convolutions, linears)."""
        group = cls.param_group(name)
        return {"grids": "grids", "bias": "biases/norms"}.get(group, "weights")

    def prunable(self, name: str) -> bool:
        return name.endswith(".weight") and self.param_group(name) in getattr(self, "PRUNABLE", ())


@dataclass(frozen=True)
class Entry:
    name: str
    model_cls: type
    config_cls: type
    default_preset: str | None = None  # configs/nerv/<preset>.yaml, what ``vcm fit --arch NAME`` fits
    codec_order: int = 90  # where its CTC codecs sort in tables and plots (its SA-NeRV codec one after)
    limits: dict = field(default_factory=dict)  # limits of its own, beside vcm.nerv.limits.LIMITS


# Another package's representation: its pyproject.toml names its module in this entry-point group
# ([project.entry-points."vcm.representations"] mine = "mylab.vcm_repr"), and the module registers it as these do.
PLUGINS = "vcm.representations"

# The modules are imported on first use; each registers itself.
_REGISTRY: Registry[Entry] = Registry("representation", ("vcm.nerv.model", "vcm.nerv.hinerv"), plugins=PLUGINS)


def register_representation(name: str, config_cls: type, default_preset: str | None = None, codec_order: int = 90,
                            limits: dict | None = None):
    def wrap(model_cls):
        _REGISTRY.add(name, Entry(name, model_cls, config_cls, default_preset, codec_order, dict(limits or {})))
        model_cls.ARCH = name
        return model_cls

    return wrap


def names() -> list[str]:
    return list(_REGISTRY)


def entry(name: str) -> Entry:
    return _REGISTRY.get(name)


def known() -> str:
    """The representations installed here, in words for an error about one that is not."""
    return _REGISTRY.known()


def entries() -> list[Entry]:
    """Every registered representation, in registration order."""
    return list(_REGISTRY.load().values())


def config_from_dict(name: str, d: dict):
    """The config of representation ``name`` from its stored dict."""
    return entry(name).config_cls.from_dict(d)


def create_representation(name: str, config):
    """Build representation ``name`` from a config object or its dict."""
    e = entry(name)
    cfg = config if isinstance(config, e.config_cls) else e.config_cls.from_dict(config)
    return e.model_cls(cfg)


# Measured peak resident memory over the float32 activation estimate (allocator, temporaries): ≤ 1.3.
ACTIVATION_SLACK = 1.5


def frame_memory(arch: str, cfg) -> int:
    """Bytes needed to decode one frame of ``cfg``: activations (with slack) and the output frame."""
    model_cls = entry(arch).model_cls
    return int(ACTIVATION_SLACK * model_cls.frame_bytes(cfg)) + 16 * cfg.height * cfg.width


def kmac_per_pixel(arch: str, cfg, width: int, height: int) -> float:
    """The decoder's multiply–accumulates per pixel of a ``width``×``height`` frame, in thousands (3 decimals)."""
    return round(entry(arch).model_cls.frame_macs(cfg) / (width * height) / 1e3, 3)


def arch_of_config(cfg) -> str:
    """The representation name a config object belongs to."""
    for e in _REGISTRY.load().values():
        if isinstance(cfg, e.config_cls):
            return e.name
    raise TypeError(f"{type(cfg).__name__} is no registered representation config")


def arch_of(config: dict) -> str:
    """The representation name stored in a run or stream config (runs before the registry: nerv)."""
    return config.get("arch", "nerv")
