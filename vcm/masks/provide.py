"""Edge masks for ``vcm fit --loss sa-nerv``: from a mask file, or made first with SAM."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vcm.errors import VcmError
from vcm.video import Video


def masks_record(masks: Path | None, sam_checkpoint: Path | None, alpha: float, sam_model: str = "vit_h",
                 settings_path: Path | None = None, source: str | None = None) -> dict:
    """The fields of the record :func:`masks_for_fit` returns (a fit's ``masks`` in its config.json) that
    these arguments decide: a finished fit whose record holds other values was trained on other masks."""
    if masks is not None:  # a file replaced under the same name is other masks
        from vcm.provenance import file_fingerprint

        if not Path(masks).is_file():
            raise VcmError(f"mask file {masks} does not exist")
        return {"path": str(Path(masks).resolve()), "fingerprint": file_fingerprint(masks)}
    if source not in (None, "sam"):
        return {"source": source}
    return {"source": "sam", "alpha": alpha, "sam_model": sam_model}


def masks_for_fit(video: Video, masks: Path | None, sam_checkpoint: Path | None, alpha: float,
                  run_dir: Path | None, device, sam_model: str = "vit_h",
                  settings_path: Path | None = None, source: str | None = None) -> tuple[np.ndarray, dict]:
    """(``uint8 [T,1,H,W]`` masks, metadata for the run config). Made masks are cached in the run dir.

    ``source``: ``sam`` (the default when a SAM checkpoint is given), ``canny`` or ``boxes:DETECTOR``
    (``vcm.masks.sources``: no SAM weights needed)."""
    from vcm.masks.store import load_masks, check_matches

    if masks is None and source not in (None, "sam"):
        from vcm.masks.sources import SourceSettings, default_path, make_source_masks, parse_source
        from vcm.nerv.run import default_run_dir

        parse_source(source)
        folder = Path(run_dir) if run_dir is not None else default_run_dir(video)
        target = default_path(video, source, SourceSettings(), folder)
        if not target.exists():
            make_source_masks(video, source, target)
        masks = target
    if masks is None:
        if sam_checkpoint is None:
            raise VcmError("--loss sa-nerv needs edge masks: pass --masks FILE (from vcm masks), --sam-checkpoint PATH, "
                           "or --mask-source canny (no weights needed)")
        from vcm.masks.make import make_masks
        from vcm.masks.sam import load_settings
        from vcm.nerv.run import default_run_dir

        folder = Path(run_dir) if run_dir is not None else default_run_dir(video)
        target = folder / f"masks_{sam_model}_a{alpha:g}.npz"
        if not target.exists():
            make_masks(video, sam_model, sam_checkpoint, [alpha], load_settings(settings_path), target, device)
        masks = target
    data, meta = load_masks(masks)
    check_matches(meta, video, Path(masks))
    from vcm.provenance import file_fingerprint

    return data, {"path": str(Path(masks).resolve()), "fingerprint": file_fingerprint(masks),
                  "source": meta.get("source", "sam"), "alpha": meta.get("alpha"),
                  "sam_model": meta.get("sam_model"), "edge_fraction": float(data.mean())}
