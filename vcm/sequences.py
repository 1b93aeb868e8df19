"""The SFU-HW class C/D manifest (``sequences/sfu-hw-cd.yaml``)."""

from __future__ import annotations

import functools
from dataclasses import dataclass


from vcm.resources import data_dir
from vcm.yamlfile import load_yaml


@dataclass(frozen=True)
class Sequence:
    """One manifest entry. ``ctc_first``/``ctc_last`` are 0-based inclusive source frame indices."""

    name: str
    aliases: tuple[str, ...]
    seq_class: str
    file: str
    width: int
    height: int
    fps: float
    frames: int
    ctc_first: int
    ctc_last: int
    qp_start: dict
    annotations: str
    clip_md5: str

    @property
    def ctc_count(self) -> int:
        return self.ctc_last - self.ctc_first + 1

    def qps(self, config: str = "ra") -> list[int]:
        """The six CTC QPs for an anchor configuration (``ra``, ``ld`` or ``ai``)."""
        start = int(self.qp_start[config])
        return [start + 4 * i for i in range(6)]


@functools.lru_cache(maxsize=1)
def manifest() -> tuple[Sequence, ...]:
    raw = load_yaml((data_dir("sequences") / "sfu-hw-cd.yaml").read_text())
    out = []
    for e in raw["sequences"]:
        out.append(
            Sequence(
                name=e["name"], aliases=tuple(e.get("aliases", [])), seq_class=e["class"],
                file=e["file"], width=int(e["width"]), height=int(e["height"]), fps=float(e["fps"]),
                frames=int(e["frames"]), ctc_first=int(e["ctc_frames"][0]),
                ctc_last=int(e["ctc_frames"][1]), qp_start=dict(e["qp_start"]),
                annotations=e["annotations"], clip_md5=e["clip_md5"],
            )
        )
    return tuple(out)


def _key(text: str) -> str:
    return text.lower().replace("-", "").replace("_", "")


def lookup(name: str) -> Sequence | None:
    """Find a sequence by name, alias or file stem (case-insensitive; ``_val``/``Hz`` tails ignored)."""
    k = _key(name)
    for seq in manifest():
        names = (seq.name, *seq.aliases, seq.file.rsplit(".", 1)[0])
        if any(k == _key(n) for n in names):
            return seq
    return None


def lookup_parsed(base: str, width: int, height: int) -> Sequence | None:
    """Match a parsed ``Name_WxH`` file name by base name and size (``RaceHorses`` needs the size)."""
    k = _key(base)
    for seq in manifest():
        bases = {seq.name, *(a.split("_")[0] for a in seq.aliases)}
        if k in {_key(b) for b in bases} and (seq.width, seq.height) == (width, height):
            return seq
    return None


def by_class(seq_class: str) -> list[Sequence]:
    return [s for s in manifest() if s.seq_class == seq_class.upper()]
