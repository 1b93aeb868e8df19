"""``vcm info MASKS.npz``: what an edge-mask file of ``vcm masks`` holds — its video, frames, source
(SAM with α, Canny, a detector's boxes) and how much of each frame is edge — or how far a stopped
``vcm masks`` got (its ``MASKS.npz.partial/`` folder)."""

from __future__ import annotations

import json
from pathlib import Path


def _partial(path: Path) -> Path:
    return Path(str(path) + ".partial")


def is_masks(path: Path) -> bool:
    """A ``.npz`` that ``vcm masks`` wrote or is writing (its frames kept in ``<file>.partial/``)."""
    from vcm.masks.store import is_mask_file

    if path.suffix.lower() != ".npz":
        return False
    return (path.is_file() and is_mask_file(path)) or (not path.exists() and (_partial(path) / "meta.json").is_file())


def describe_masks(path: Path) -> dict:
    """The mask file's metadata, its frames (``[T, H, W]`` after unpacking) and the share of edge pixels
    (all frames, and the least and most of one frame, in %); a stopped run's frames made and to make."""
    from vcm.errors import VcmError
    from vcm.masks.store import load_masks
    from vcm.schema import finite_number, whole_number

    r = {"path": str(path), "kind": "masks", "made": path.is_file(), "stopped": None}
    if path.is_file():
        masks, meta = load_masks(path)  # every declared size checked against the arrays present
        per_frame = masks.reshape(len(masks), -1).mean(axis=1, dtype=float) * 100
        r.update(edge_percent=float(per_frame.mean()), edge_percent_range=[float(per_frame.min()), float(per_frame.max())])
    else:
        try:
            meta = json.loads((_partial(path) / "meta.json").read_text())
            if not isinstance(meta, dict):
                raise ValueError
            a, b = meta["source_frames"]
            if not (whole_number(a) and whole_number(b)):  # int() took "3" and 2.7 as frame numbers
                raise ValueError
            r["stopped"] = {"made": len(list(_partial(path).glob("frame_*.npy"))), "frames": b - a}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            raise VcmError(f"{path} is not made yet and its {_partial(path).name}/ is not readable") from None

    # what the file says, where it says it in the types vcm masks writes (an edited α or source was a traceback)
    settings = meta.get("settings") if isinstance(meta.get("settings"), dict) else {}
    alpha = meta.get("alpha") if finite_number(meta.get("alpha")) else None
    sam_model = meta.get("sam_model") if isinstance(meta.get("sam_model"), str) else None
    source = meta.get("source") if isinstance(meta.get("source"), str) and meta["source"] else \
        (f"sam ({sam_model})" if sam_model else "sam")
    dilation = settings.get("dilation", 0)
    r.update(video=meta.get("video"), width=meta.get("width"), height=meta.get("height"),
             source_frames=meta.get("source_frames"), source=source, alpha=alpha,
             dilation=dilation if isinstance(dilation, int) and not isinstance(dilation, bool) else None,
             checkpoint=meta.get("checkpoint"), video_fingerprint=meta.get("video_fingerprint"))
    if r["source_frames"] is not None:
        r["frames"] = r["source_frames"][1] - r["source_frames"][0]
    return r


def mask_rows(r: dict) -> list[tuple[str, str]]:
    """The table of :func:`describe_masks`'s result."""
    a, b = r["source_frames"] or (None, None)
    rows = [("file", r["path"]), ("video", f"{r['video']} ({r['width']}x{r['height']}), source frames {a}:{b}"),
            ("source", r["source"] + (f", α {r['alpha']:g}" if r["alpha"] is not None else "")
             + (f", dilated {r['dilation']} px" if r["dilation"] else ""))]
    if r["checkpoint"]:
        rows.append(("SAM weights", r["checkpoint"]))
    if r["made"]:
        lo, hi = r["edge_percent_range"]
        rows += [("frames", str(r["frames"])),
                 ("edge pixels", f"{r['edge_percent']:.2f} % ({lo:.2f} … {hi:.2f} % a frame)")]
    else:
        s = r["stopped"]
        rows.append(("stopped", f"{s['made']} of {s['frames']} frames made; the same vcm masks command continues"))
    rows.append(("video fingerprint", str(r["video_fingerprint"])))
    return rows
