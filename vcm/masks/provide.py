"""Edge masks for ``vcm fit --loss sa-nerv``: from a mask file, or made first with SAM."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vcm.errors import VcmError
from vcm.fsutil import require_input
from vcm.masks.sam import DEFAULT_MODEL
from vcm.video import Video


SAM_INPUTS = ("checkpoint_fingerprint", "settings")  # what SAM-made masks depend on besides the frames, model, α


def masks_record(masks: Path | None, sam_checkpoint: Path | None, alpha: float, sam_model: str = DEFAULT_MODEL,
                 settings_path: Path | None = None, source: str | None = None) -> dict:
    """The fields of the record :func:`masks_for_fit` returns (a fit's ``masks`` in its config.json) that
    these arguments decide: a finished fit whose record holds other values was trained on other masks."""
    if masks is not None:  # a file replaced under the same name is other masks
        from vcm.provenance import file_fingerprint

        require_input(masks, "mask file")
        return {"path": str(Path(masks).resolve()), "fingerprint": file_fingerprint(masks)}
    if source not in (None, "sam"):
        return {"source": source}
    record = {"source": "sam", "alpha": alpha, "sam_model": sam_model}
    if sam_checkpoint is not None:  # weights or a masks config replaced under the same name make other masks
        from vcm.masks.sam import checkpoint_fingerprint, load_settings

        record.update(checkpoint_fingerprint=checkpoint_fingerprint(Path(sam_checkpoint), sam_model),
                      settings=load_settings(settings_path).to_dict())
    return record


def completed_record(record: dict) -> dict:
    """A fit's masks record as its config.json holds it, with the SAM weights' fingerprint and the generator
    settings read from the mask file it names when the fit was recorded before they were (so that it is not
    taken for a fit on other masks)."""
    if record.get("source", "sam") != "sam" or "checkpoint_fingerprint" in record or not record.get("path"):
        return record
    from vcm.masks.store import read_meta

    saved = read_meta(Path(record["path"]))
    if not saved:
        return record
    return {**record, **{k: saved[k] for k in SAM_INPUTS if k in saved}}


def masks_for_fit(video: Video, masks: Path | None, sam_checkpoint: Path | None, alpha: float,
                  run_dir: Path | None, device, sam_model: str = DEFAULT_MODEL,
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
            make_source_masks(video, source, target, device=device)
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
        # The run's own masks are reused only when made from these weights and settings (they were reused by
        # name: other weights or a masks config edited went on with the old masks without a word).
        make_masks(video, sam_model, sam_checkpoint, [alpha], load_settings(settings_path), target, device,
                   hint=f"the run in {folder} was trained on them; give the weights and settings they were "
                           f"made with, or start a new run with --out DIR")
        masks = target
    data, meta = load_masks(masks)
    check_matches(meta, video, Path(masks))
    if not data.any():  # eq. (6)'s masked term is then zero: a plain fit, named SA-NeRV without a word
        from vcm import progress

        progress.log(f"the edge masks ({Path(masks).name}, source {meta.get('source', 'sam')}) mark no pixel in any of "
                     f"these {len(data)} frames: the SA-NeRV loss adds nothing to the plain loss on them",
                     style="yellow")
    from vcm.provenance import file_fingerprint

    made_by = {k: meta[k] for k in SAM_INPUTS if k in meta}
    return data, {"path": str(Path(masks).resolve()), "fingerprint": file_fingerprint(masks),
                  "source": meta.get("source", "sam"), "alpha": meta.get("alpha"),
                  "sam_model": meta.get("sam_model"), **made_by, "edge_fraction": float(data.mean())}
