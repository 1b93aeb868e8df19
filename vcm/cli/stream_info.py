"""``vcm info FILE.nerv | FILE.icm``: what a stream declares, read from its header (no frame decoded)."""

from __future__ import annotations

from pathlib import Path

from vcm.rate import rate

STREAM_SUFFIXES = (".nerv", ".icm")


def describe_stream(path: Path) -> dict:
    """The stream's video (name, size, fps, frames, source range), its size and rate, and what decodes it:
    a ``.nerv`` file's network (architecture, coding, parameters, decoder kMAC per pixel) is rebuilt from
    its tensors, which :func:`vcm.codec.decode.decode_stream` checks as a decode would; a ``.icm`` file's
    header names the image codec and the checkpoint its decoder needs."""
    data_bytes = path.stat().st_size
    if path.suffix.lower() == ".icm":
        from vcm.icm.stream_header import read_header

        header, _ = read_header(path.read_bytes())
        video = {k: header[k] for k in ("name", "width", "height", "fps", "frames", "source_frames")}
        decoder = {"codec": f"vcm ICM ({header['arch']})", "checkpoint": header["checkpoint"]}
    else:
        from vcm.codec.decode import decode_stream

        stream = decode_stream(path, allow_large=True)  # no frame is decoded: the work is only reported
        data = path.read_bytes()  # read and checked as a stream already
        v = stream.video
        video = {k: v[k] for k in ("name", "width", "height", "fps", "frames", "source_frames")}
        decoder = {"codec": f"vcm NeRV ({stream.arch}, {'rate–distortion' if stream.coding == 'rd' else 'prune–quantize'} coding)",
                   "params": stream.param_count(), "kmac_per_pixel": stream.kmac_per_pixel(v["width"], v["height"]),
                   "format_version": data[4], **_grid_coding(stream), **_breakdown(data, stream)}
    return {"path": str(path), "kind": "stream", **video,
            **rate(data_bytes, video["fps"], video["frames"], video["width"], video["height"]), **decoder}


def _breakdown(data: bytes, stream) -> dict:
    """``{breakdown: rows}``: where a stream's bytes (``data``, the file) go, per part (:mod:`vcm.codec.breakdown`,
    as ``vcm compress`` reports it). The sizes it needs come from writing the decoded stream again, which for the
    formats this vcm writes gives the file's own bytes (checked); nothing for other streams."""
    from vcm.codec import nerv_stream
    from vcm.codec.breakdown import stream_breakdown

    if stream.coding == "rd" and data[4] != nerv_stream.VERSION:  # the byte after the magic: the format version
        return {}  # an older rd format: written again, it would be the latest one's bytes
    again = nerv_stream.encode(stream)
    if again.data != data:  # a stream this vcm would not have written so: no sizes to split it by
        return {}
    return {"breakdown": stream_breakdown(stream, again)}


def _grid_coding(stream) -> dict:
    """``{grid_coding: {waves, rows, plain}}``: how a rate–distortion stream of the latest format codes its grids
    that could be context-coded (in waves, row by row, or under one Laplace each); nothing for other streams
    (an older stream's choices are not kept when it is read)."""
    from vcm.codec.rd_coding import context_capable
    from vcm.entropy_models.context import WAVES

    if stream.coding != "rd":
        return {}
    grids = [t for t in stream.tensors if t.coding is not None and context_capable(t.shape, t.temporal)]
    if not grids:
        return {}
    kinds = ["plain" if t.coding.params is None else "waves" if len(t.coding.params.weights) == WAVES else "rows"
             for t in grids]
    return {"grid_coding": {k: kinds.count(k) for k in ("waves", "rows", "plain")}}


def stream_rows(r: dict) -> list[tuple[str, str]]:
    """The table of :func:`describe_stream`'s result."""
    rows = [("file", r["path"]), ("type", r["codec"]), ("name", r["name"]), ("size", f"{r['width']}x{r['height']}"),
            ("fps", f"{r['fps']:g}"), ("frames", str(r["frames"])),
            ("source frames", f"{r['source_frames'][0]}:{r['source_frames'][1]}"),
            ("stream", f"{r['bytes']:,} bytes, {r['kbps']:.2f} kbps ({r['bpp']:.5f} bpp)")]
    if "params" in r:
        rows.append(("network", f"{r['params']:,} parameters"))
    if "kmac_per_pixel" in r:
        rows.append(("decoder", f"{r['kmac_per_pixel']:.2f} kMAC per pixel"))
    if "format_version" in r:
        g = r.get("grid_coding")
        grids = "" if not g else ("; grids: " + ", ".join(
            f"{n} {what}" for n, what in ((g["waves"], "in waves"), (g["rows"], "row by row"), (g["plain"], "plain")) if n))
        rows.append(("format", f"version {r['format_version']}{grids}"))
    from vcm.codec.breakdown import part_text

    rows += [(part["part"], part_text(part)) for part in r.get("breakdown", [])]
    if "checkpoint" in r:
        rows.append(("decoder", f"needs the codec checkpoint {r['checkpoint']}"))
    return rows
