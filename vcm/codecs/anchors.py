"""HEVC and VVC anchors through ffmpeg (libx265 / libvvenc) or a VTM build (:mod:`vcm.anchors.ffmpeg`)."""

from __future__ import annotations

from pathlib import Path

from vcm import sequences
from vcm.codecs import Codec, register_codec
from vcm.errors import VcmError


class Anchor(Codec):
    section_keys = ("qps", "config", "preset", "vtm")
    qp_range = (0, 51)  # what the encoder takes

    def points(self, section: dict, sequence: dict) -> list[tuple[str, dict]]:
        from vcm.anchors.ffmpeg import check_config

        qps = section.get("qps", "manifest")
        try:  # the encoder's structure too, not only the manifest's QPs: config ai coded random access before
            config = check_config(section.get("config", "ra"))
        except VcmError as err:
            raise VcmError(f"codec {self.name}: {err}") from None
        if qps == "manifest":
            entry = sequences.lookup(sequence["name"])
            if entry is None:
                raise VcmError(f"{sequence['name']}: QPs 'manifest' need an SFU-HW sequence; list qps explicitly")
            qps = entry.qps(config)
        lo, hi = self.qp_range
        # a QP out of range crashed the encoder (x265 at -1: exit code -11) and 30.5 ran as 30
        if not (isinstance(qps, list) and qps and all(isinstance(q, int) and not isinstance(q, bool) and lo <= q <= hi
                                                      for q in qps)):
            raise VcmError(f"codec {self.name}: qps must be a list of whole numbers from {lo} to {hi} (or 'manifest'), "
                           f"got {qps!r}")
        # random access, the default, is left out of the point: its finished points keep their keys
        extra = {} if config == "ra" else {"config": config}
        return [(f"qp{q}", {"qp": q, "preset": section.get("preset"), "vtm": section.get("vtm"), **extra}) for q in qps]

    def label(self, point: dict, coded: dict) -> str:
        return f"QP{point['qp']}"

    def describe(self, settings: dict) -> str:
        st = dict(settings)
        text = (f"{st.pop('encoder')}, preset {st.pop('preset', '–')}, {st.pop('config', '')}, intra period "
                f"{st.pop('intra_period', '–')}, {st.pop('bit_depth', '–')}-bit")
        return text + (f" ({st['ffmpeg']})" if st.get("ffmpeg") else "")

    def encode_decode(self, spec: dict, video, device) -> dict:
        from vcm.anchors.ffmpeg import CODECS, encode_decode, planes_of, settings

        p = spec["point"]
        planes, bit_depth = planes_of(video)
        out = Path(spec["workdir"]) / f"stream{CODECS[self.name][2]}"
        config = p.get("config", "ra")
        r = encode_decode(self.name, planes, bit_depth, video.width, video.height, video.fps, p["qp"], out,
                          preset=p.get("preset"), vtm=p.get("vtm"), config=config)
        return {"bitstream": str(out), "bytes": out.stat().st_size, "frames_u8": r.frames_u8,
                "encode": r.encode_seconds, "decode": r.decode_seconds, "qp": p["qp"],
                "settings": settings(self.name, video.fps, p.get("preset"), p.get("vtm"), config)}


@register_codec("hevc", order=40)
class Hevc(Anchor):
    description = "HEVC anchor (libx265, or HM/VTM-style external encoder)"


@register_codec("vvc", order=50)
class Vvc(Anchor):
    description = "VVC anchor (libvvenc, or VTM)"
    qp_range = (0, 63)
