"""HEVC and VVC anchors through ffmpeg (libx265 / libvvenc) or a VTM build (:mod:`vcm.anchors.ffmpeg`)."""

from __future__ import annotations

from pathlib import Path

from vcm import sequences
from vcm.codecs import Codec, register_codec
from vcm.errors import VcmError


VTM_KEYS = ("encoder", "decoder", "config")


class Anchor(Codec):
    section_keys = ("qps", "config", "preset", "vtm")
    qp_range = (0, 51)  # what the encoder takes
    presets: tuple[str, ...] = ()  # the ffmpeg encoder's presets, fastest first

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
        preset, vtm = section.get("preset"), section.get("vtm")
        if preset is not None and preset not in self.presets:  # was a failed point per QP, or a TypeError
            raise VcmError(f"codec {self.name}: preset must be one of {', '.join(self.presets)}, got {preset!r}")
        if vtm is not None:
            missing = [k for k in VTM_KEYS if not isinstance(vtm, dict) or not isinstance(vtm.get(k), str)]
            unknown = sorted(set(vtm) - set(VTM_KEYS)) if isinstance(vtm, dict) else []
            if missing or unknown:
                raise VcmError(f"codec {self.name}: vtm must be {{encoder: EncoderApp, decoder: DecoderApp, config: "
                               f"FILE.cfg}} (paths or commands on PATH), got {vtm!r}")
            if preset is not None:  # ignored without a word: the external encoder never sees it
                raise VcmError(f"codec {self.name}: preset {preset} is the ffmpeg encoder's, and vtm codes with an "
                               f"external encoder, whose settings are in its config file; leave preset out")
        # random access, the default, is left out of the point: its finished points keep their keys
        extra = {} if config == "ra" else {"config": config}
        return [(f"qp{q}", {"qp": q, "preset": preset, "vtm": vtm, **extra}) for q in qps]

    def point_inputs(self, point: dict) -> dict:
        """An external VTM's programs and configuration file, found and fingerprinted (a build or a .cfg replaced
        under the same name is another anchor); the ffmpeg encoders' version is in each point's settings."""
        vtm = point.get("vtm")
        if not vtm:
            return {}
        import shutil

        from vcm.provenance import file_fingerprint

        found = {}
        for key in VTM_KEYS:
            path = vtm[key] if key == "config" or Path(vtm[key]).is_file() else shutil.which(vtm[key])
            if path is None or not Path(path).is_file():
                raise VcmError(f"codec {self.name}: vtm {key} {vtm[key]} " +
                               ("does not exist" if key == "config" else "is neither a file nor a command on PATH"))
            found[key] = file_fingerprint(path)
        return {"vtm": found}

    def check_programs(self, point: dict) -> None:
        """The ffmpeg vcm runs has this codec's encoder (a VTM's programs are found by :meth:`point_inputs`)."""
        if point.get("vtm"):
            return
        from vcm.anchors.ffmpeg import CODECS
        from vcm.video.ffmpeg_binary import require_encoder

        try:
            require_encoder(CODECS[self.name][0])
        except VcmError as err:
            raise VcmError(f"codec {self.name}: {err}") from None

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
    presets = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
               "placebo")


@register_codec("vvc", order=50)
class Vvc(Anchor):
    description = "VVC anchor (libvvenc, or VTM)"
    qp_range = (0, 63)
    presets = ("faster", "fast", "medium", "slow", "slower")
