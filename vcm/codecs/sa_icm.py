"""SA-ICM: a learned image codec trained with the edge-masked loss, every frame coded alone."""

from __future__ import annotations

import time
from pathlib import Path

from vcm.codecs import Codec, register_codec


@register_codec("sa-icm", order=30)
class SaIcm(Codec):
    description = "SA-ICM intra codec (TCM), one point per checkpoint"
    section_keys = ("checkpoints", "arch")
    suffix = ".icm"

    def read_stream(self, path, device, wanted=None, checkpoint=None):
        from vcm.icm.codec import decode_icm_file

        out, header = decode_icm_file(Path(path), device, checkpoint)
        return out, range(*header["source_frames"]), header.get("sequence") or header["name"]

    def stream_sequence(self, path) -> str:
        from vcm.errors import VcmError
        from vcm.icm.stream_header import read_header

        if not Path(path).is_file():
            raise VcmError(f"{path} does not exist")
        header, _ = read_header(Path(path).read_bytes())
        return header.get("sequence") or header["name"]

    def points(self, section: dict, sequence: dict) -> list[tuple[str, dict]]:
        return [(Path(c).name.split(".")[0], {"checkpoint": str(c), "arch": section.get("arch", "tcm")})
                for c in section.get("checkpoints") or []]

    def encode_decode(self, spec: dict, video, device) -> dict:
        from vcm.icm.codec import decode_icm_file, encode_video

        p = spec["point"]
        out = Path(spec["workdir"]) / "stream.icm"
        t = time.time()
        encode_video(video, Path(p["checkpoint"]), out, device, arch=p.get("arch", "tcm"))
        encode = time.time() - t
        frames, _ = decode_icm_file(out, device, checkpoint=Path(p["checkpoint"]))
        return {"bitstream": str(out), "bytes": out.stat().st_size, "frames_u8": frames, "encode": encode,
                "decode": time.time() - t - encode, "qp": None}
