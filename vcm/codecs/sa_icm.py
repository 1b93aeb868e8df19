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
    reads_checkpoint = True

    def read_stream(self, path, device, wanted=None, checkpoint=None):
        from vcm.icm.codec import decode_icm_file

        part = None

        def select(header: dict) -> range:  # intra frames: only the asked ones are decoded
            nonlocal part
            source = range(*header["source_frames"])
            part = wanted(source, header.get("sequence") or header["name"]) if wanted is not None else source
            return range(part.start - source.start, part.stop - source.start)

        out, header = decode_icm_file(Path(path), device, checkpoint, select)
        return out, part, header.get("sequence") or header["name"]

    def stream_sequence(self, path) -> str:
        from vcm.icm.stream_header import read_header

        from vcm.fsutil import require_input

        require_input(path)
        header, _ = read_header(Path(path).read_bytes())
        return header.get("sequence") or header["name"]

    def points(self, section: dict, sequence: dict) -> list[tuple[str, dict]]:
        """One point per checkpoint, named by its file's stem (by its folder too where two stems agree:
        ``q1/model.pth`` and ``q2/model.pth`` are ``q1_model`` and ``q2_model``)."""
        from vcm.errors import VcmError
        from vcm.icm.archs import check_arch

        checkpoints = section.get("checkpoints")
        if checkpoints is None or checkpoints == []:  # a section with none was a curve of no points, run silently
            raise VcmError("sa-icm needs checkpoints: [a list of SA-ICM checkpoint paths], one rate point each "
                           "(vcm icm train writes them)")
        if not isinstance(checkpoints, list) or not all(isinstance(c, str) for c in checkpoints):
            raise VcmError(f"sa-icm checkpoints must be a list of checkpoint paths, got {checkpoints!r}")
        arch = section.get("arch")  # for checkpoints that record none; vcm icm train's say theirs
        if arch is not None:
            check_arch(str(arch))
        stems = [Path(c).name.split(".")[0] for c in checkpoints]
        names = [f"{Path(c).parent.name}_{s}" if stems.count(s) > 1 else s for c, s in zip(checkpoints, stems)]
        return [(n, {"checkpoint": c, **({"arch": arch} if arch is not None else {})})
                for n, c in zip(names, checkpoints)]

    def point_inputs(self, point: dict) -> dict:
        """The checkpoint's fingerprint (a file replaced under the same name is another codec)."""
        from vcm.fsutil import require_input
        from vcm.icm.archs import missing_checkpoint
        from vcm.provenance import file_fingerprint

        path = point["checkpoint"]
        require_input(path, "sa-icm checkpoint", missing=f"sa-icm {missing_checkpoint(path)}")
        return {"checkpoint": file_fingerprint(point["checkpoint"])}

    def encode_decode(self, spec: dict, video, device) -> dict:
        from vcm.icm.codec import decode_icm_file, encode_video

        p = spec["point"]
        out = Path(spec["workdir"]) / "stream.icm"
        t = time.time()
        encode_video(video, Path(p["checkpoint"]), out, device, arch=p.get("arch"))
        encode = time.time() - t
        frames, _ = decode_icm_file(out, device, checkpoint=Path(p["checkpoint"]))
        return {"bitstream": str(out), "bytes": out.stat().st_size, "frames_u8": frames, "encode": encode,
                "decode": time.time() - t - encode, "qp": None}
