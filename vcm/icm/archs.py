"""The learned image codecs' architectures and their configurations, without torch or CompressAI.

What a command needs to check its options (an architecture's name, the side its crops and frames
must be a multiple of) is here, so that a wrong value is refused before the network's libraries,
seconds of imports, are loaded. ``vcm.icm.models`` builds the networks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from vcm.errors import VcmError

ARCHS = ("tcm", "tcm-tiny", "cheng2020-attn", "mbt2018-mean")
SA_ICM_PAGE = "https://github.com/final-0/SA-ICM"


def missing_checkpoint(path) -> str:
    """The message for a checkpoint that is not there: where the official weights are, or how to make one."""
    return (f"checkpoint {path} not found; the official SA-ICM weights (icm_78.pth.tar, icm_93.pth.tar) are published "
            f"with the SA-ICM code ({SA_ICM_PAGE}); or train one with vcm icm train")


# The largest TCM a checkpoint may describe (the official one: widths up to 320, 2 blocks a stage).
MAX_WIDTH, MAX_BLOCKS = 4096, 32


@dataclass(frozen=True)
class TCMConfig:
    N: int = 128
    M: int = 320
    num_slices: int = 5
    max_support_slices: int = 5
    window: int = 8
    config: tuple[int, ...] = (2, 2, 2, 2, 2, 2)
    head_dim: tuple[int, ...] = (8, 16, 32, 32, 16, 8)
    z_channels: int = 192
    hyper_head_dim: int = 32
    hyper_window: int = 4
    atten_dim: int = 128  # inter_dim of the slice attention blocks
    atten_head_dim: int = 16
    cc_hidden: tuple[int, int] = (224, 128)

    def __post_init__(self):
        # a checkpoint's config is built before its weights are loaded: a six-stage config of another length was an
        # IndexError traceback, and a stage of 100,000 blocks ran for minutes
        if len(self.config) != 6 or len(self.head_dim) != 6 or len(self.cc_hidden) != 2:
            raise VcmError("a TCM config has 6 stages (config, head_dim) and 2 hidden widths (cc_hidden)")
        widths = {"N": self.N, "M": self.M, "z_channels": self.z_channels, "atten_dim": self.atten_dim,
                  "cc_hidden": max(self.cc_hidden), "num_slices": self.num_slices}
        for name, value in widths.items():
            if not 1 <= value <= MAX_WIDTH:
                raise VcmError(f"TCM {name}={value} is outside 1…{MAX_WIDTH}")
        if not all(0 <= c <= MAX_BLOCKS for c in self.config) or not 0 <= self.max_support_slices <= self.num_slices \
                or not (1 <= self.window <= 64 and 1 <= self.hyper_window <= 64) or min(self.cc_hidden) < 1:
            raise VcmError(f"TCM blocks per stage (0…{MAX_BLOCKS}), support slices (0…num_slices) or windows (1…64) "
                           "out of range")
        pairs = [("N", self.N, h) for h in (*self.head_dim, self.hyper_head_dim)]
        pairs.append(("atten_dim", self.atten_dim, self.atten_head_dim))
        for name, width, head in pairs:
            if head <= 0 or width % head:
                raise VcmError(f"TCM {name}={width} is not a multiple of its attention head size {head}")
        if self.M % self.num_slices:
            raise VcmError(f"TCM M={self.M} does not split into {self.num_slices} equal slices")

    @property
    def pad_multiple(self) -> int:
        return 16 * self.window

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "TCMConfig":
        """Strict: unknown keys and wrongly typed values raise ValueError naming the field."""
        from vcm.schema import strict_from_dict

        return strict_from_dict(cls, d)


TINY = TCMConfig(N=16, M=40, config=(1, 1, 1, 1, 1, 1), head_dim=(8, 8, 8, 8, 8, 8), z_channels=16,
                 hyper_head_dim=8, atten_dim=16, atten_head_dim=8, cc_hidden=(24, 16), window=4, hyper_window=2)


def check_arch(arch: str) -> None:
    if arch not in ARCHS:
        raise VcmError(f"unknown codec architecture {arch!r}; choose one of {', '.join(ARCHS)}")


def default_tcm(arch: str) -> TCMConfig:
    """The configuration ``create(arch)`` builds for ``tcm`` (official size) or ``tcm-tiny``."""
    return TCMConfig() if arch == "tcm" else TINY


def default_pad_multiple(arch: str) -> int:
    """``pad_multiple`` of ``create(arch)`` (its default configuration), without building it."""
    check_arch(arch)
    return default_tcm(arch).pad_multiple if arch in ("tcm", "tcm-tiny") else 64
