"""Loading Segment Anything and running its automatic mask generator.

Official models (vit_h, vit_l, vit_b) are built by segment-anything's own ``sam_model_registry``
from the published checkpoints. ``tiny`` is a small architecture built from the same model
classes (random weights unless a checkpoint is given): it runs the real generator in seconds,
for tests and smoke runs.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from vcm.errors import VcmError
from vcm.schema import check_keys
from vcm.resources import data_dir
from vcm.yamlfile import read_yaml_file
from vcm.words import noun

OFFICIAL = {
    "vit_h": "sam_vit_h_4b8939.pth",
    "vit_l": "sam_vit_l_0b3195.pth",
    "vit_b": "sam_vit_b_01ec64.pth",
}
WEIGHTS_URL = "https://dl.fbaipublicfiles.com/segment_anything/"
WEIGHTS_PAGE = "https://github.com/facebookresearch/segment-anything#model-checkpoints"
MODEL_TYPES = (*OFFICIAL, "tiny")


def build_tiny_sam():
    """A small SAM (ViT encoder of 2 blocks, 32 channels, 64-px input) from segment-anything's classes."""
    import torch
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    img, patch, dim = 64, 16, 32
    return Sam(
        image_encoder=ImageEncoderViT(
            depth=2, embed_dim=dim, img_size=img, mlp_ratio=2, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=2, patch_size=patch, qkv_bias=True, use_rel_pos=True, global_attn_indexes=(1,),
            window_size=0, out_chans=dim,
        ),
        prompt_encoder=PromptEncoder(embed_dim=dim, image_embedding_size=(img // patch, img // patch),
                                     input_image_size=(img, img), mask_in_chans=4),
        mask_decoder=MaskDecoder(num_multimask_outputs=3,
                                 transformer=TwoWayTransformer(depth=1, embedding_dim=dim, mlp_dim=64, num_heads=2),
                                 transformer_dim=dim, iou_head_depth=2, iou_head_hidden_dim=dim),
        pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375],
    )


def checkpoint_fingerprint(path: Path, model_type: str = "") -> str:
    """sha256 (16 hex) of the size and the first and last 4 MiB: fast on 2.4 GB files, and read once per process
    while the file stays (a CTC plan asks for every SA-NeRV point). A missing file is :func:`load_sam`'s error
    (where ``model_type``'s weights are published)."""
    from vcm.provenance import digest_while_unchanged

    _require_checkpoint(model_type, Path(path))
    return digest_while_unchanged(path, _head_and_tail_digest)


def _head_and_tail_digest(path: Path) -> str:
    h = hashlib.sha256(str(os.path.getsize(path)).encode())
    with open(path, "rb") as f:
        h.update(f.read(4 << 20))
        f.seek(max(0, os.path.getsize(path) - (4 << 20)))
        h.update(f.read())
    return h.hexdigest()[:16]


def _require_checkpoint(model_type: str, path: Path) -> None:
    """Refuse SAM weights that are not a readable file; a missing one names where ``model_type``'s are published."""
    from vcm.fsutil import require_input

    name = OFFICIAL.get(model_type)
    where = f"; the {model_type} weights are {name}, published at {WEIGHTS_URL}{name} (see {WEIGHTS_PAGE})" if name \
        else ""
    require_input(path, "SAM checkpoint", missing=f"SAM checkpoint {path} not found{where}")


DEFAULT_MODEL = "vit_h"  # SAM's model where none is given (the paper's)


def check_sam_model(model_type: str | None) -> str:
    """The SAM model to use: ``model_type``, refused unless one of ``MODEL_TYPES``, or ``DEFAULT_MODEL`` for None."""
    if model_type is None:
        return DEFAULT_MODEL
    if model_type not in MODEL_TYPES:
        raise VcmError(f"unknown SAM model {model_type!r}; choose one of {', '.join(MODEL_TYPES)}")
    return model_type


def load_sam(model_type: str, checkpoint: Path, device):
    """Build SAM of ``model_type`` with the weights in ``checkpoint``, on ``device``, in eval mode."""
    import torch

    check_sam_model(model_type)
    checkpoint = Path(checkpoint)
    _require_checkpoint(model_type, checkpoint)
    try:
        if model_type == "tiny":
            sam = build_tiny_sam()
            sam.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
        else:
            from segment_anything import sam_model_registry

            sam = sam_model_registry[model_type](checkpoint=str(checkpoint))
    except RuntimeError as err:
        hint = f" (the official file is {OFFICIAL[model_type]})" if model_type in OFFICIAL else ""
        if "size mismatch" in str(err) or "Missing key" in str(err) or "Unexpected key" in str(err):
            raise VcmError(f"{checkpoint.name} does not hold SAM {model_type} weights{hint}; "
                           "pass the --sam-model that matches the file") from None
        raise VcmError(f"{checkpoint.name} cannot be read as a SAM checkpoint{hint}") from None
    except Exception as err:  # unpickling errors, truncated files
        raise VcmError(f"{checkpoint.name} cannot be read as a SAM checkpoint ({type(err).__name__})") from None
    return sam.to(device).eval()


@dataclass(frozen=True)
class MaskSettings:
    """Generator options (segment-anything's names), the α mapping and the edge dilation."""

    generator: dict
    alpha_param: str = "pred_iou_thresh"
    dilation: int = 0

    def for_alpha(self, alpha: float) -> dict:
        return {**self.generator, self.alpha_param: float(alpha)}

    def to_dict(self) -> dict:
        return {"generator": self.generator, "alpha_param": self.alpha_param, "dilation": self.dilation}


_ALPHA_PARAMS = ("pred_iou_thresh", "stability_score_thresh")


def load_settings(path: Path | None = None, dilation: int | None = None) -> MaskSettings:
    """Read a masks config (``configs/masks/default.yaml`` by default)."""
    path = Path(path) if path else data_dir("configs") / "masks" / "default.yaml"
    raw = read_yaml_file(path, "masks config") or {}
    try:
        check_keys(raw, ("alpha_param", "generator", "edges"), str(path))
        check_keys(raw.get("edges") or {}, ("dilation",), f"{path}: edges")
    except ValueError as err:
        raise VcmError(str(err)) from None
    alpha_param = raw.get("alpha_param", "pred_iou_thresh")
    if alpha_param not in _ALPHA_PARAMS:
        raise VcmError(f"{path}: alpha_param must be one of {', '.join(_ALPHA_PARAMS)}")
    if not isinstance(raw.get("generator") or {}, dict):
        raise VcmError(f"{path}: generator must be a mapping of SAM generator option: value, got {raw['generator']!r}")
    gen = dict(raw.get("generator") or {})
    _check_generator(gen, path)
    d = (raw.get("edges") or {}).get("dilation", 0) if dilation is None else dilation
    if isinstance(d, bool) or not isinstance(d, int) or d < 0:
        raise VcmError(f"{path}: edges: dilation must be a whole number of pixels ≥ 0, got {d!r}"
                       if dilation is None else "--dilation must be ≥ 0")
    return MaskSettings(generator=gen, alpha_param=alpha_param, dilation=d)


def _check_generator(gen: dict, path: Path) -> None:
    """Only SamAutomaticMaskGenerator's own options, each of the type its signature declares (a wrong one
    failed inside SAM, after its weights had loaded)."""
    import inspect
    import math
    import typing

    from segment_anything import SamAutomaticMaskGenerator

    params = inspect.signature(SamAutomaticMaskGenerator.__init__).parameters
    known = set(params) - {"self", "model", "output_mode", "point_grids"}
    unknown = set(gen) - known
    if unknown:
        raise VcmError(f"{path}: unknown SAM generator {noun(len(unknown), 'option')} {', '.join(sorted(unknown))}")
    for key, value in gen.items():
        annotation = params[key].annotation
        # points_per_side may be null only with point_grids, which a YAML file cannot give
        optional = type(None) in typing.get_args(annotation) and key != "points_per_side"
        kind = next((a for a in (typing.get_args(annotation) or (annotation,)) if a is not type(None)), annotation)
        if value is None and optional:
            continue
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not number or (kind is int and not isinstance(value, int)):
            raise VcmError(f"{path}: generator: {key} must be {'a whole number' if kind is int else 'a number'}"
                           f"{' or null' if optional else ''}, got {value!r}")


DEFAULT_ALPHA = 0.93  # SAM's confidence threshold α where none is given (the paper's)


def check_alpha(alpha: float | None, where: str = "--alpha") -> float:
    """SAM's confidence threshold α to use: ``alpha``, refused (naming ``where`` it was given) unless a number in
    [0, 1] (NaN, a word or a flag included), or ``DEFAULT_ALPHA`` for None. The commands and CTC configs check it
    before any frame is read or the weights (2.4 GB for vit_h) are loaded."""
    if alpha is None:
        return DEFAULT_ALPHA
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise VcmError(f"{where} must be a number in [0, 1], got {alpha!r}")
    return alpha


def make_generator(sam, settings: MaskSettings, alpha: float):
    from segment_anything import SamAutomaticMaskGenerator

    check_alpha(alpha)
    return SamAutomaticMaskGenerator(sam, output_mode="binary_mask", **settings.for_alpha(alpha))


def frame_edges(generator, frame_u8: np.ndarray, dilation: int) -> np.ndarray:
    """One ``uint8 [3,H,W]`` RGB frame → ``bool [H,W]`` edge mask."""
    import torch

    from vcm.masks.edges import edge_mask

    hwc = np.ascontiguousarray(frame_u8.transpose(1, 2, 0))
    with torch.inference_mode():
        anns = generator.generate(hwc)
    return edge_mask([a["segmentation"] for a in anns], hwc.shape[:2], dilation, [int(a["area"]) for a in anns])
