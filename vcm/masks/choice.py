"""Where a fit's edge masks come from, and the rules every way of choosing it follows.

A fit on the SA-NeRV loss reads its masks from one place: a mask file (``vcm masks``), SAM's weights (masks made
here, with SAM's threshold α, model and generator settings) or a source that needs no weights (``canny``,
``boxes:DETECTOR``). ``vcm fit``'s options and a CTC config's ``masks`` section choose it with other names; both
are checked by :func:`check_choice`, so that a rule added here holds for both. A choice that names two places, or
a SAM setting where SAM makes no masks, is refused: the first place used to win and the rest was ignored unseen.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from vcm.errors import VcmError


@dataclass(frozen=True)
class MaskChoice:
    """A fit's edge-mask choice as given; None where it was not given.

    ``masks``: a mask file's path; ``sam_checkpoint``: SAM's weights; ``source``: ``sam``, ``canny`` or
    ``boxes:DETECTOR``; ``alpha``: SAM's confidence threshold in [0, 1]; ``sam_model``: the model of the weights
    (vit_h, vit_l, vit_b, tiny); ``config``: a YAML file of SAM's mask-generator settings."""

    masks: object = None
    sam_checkpoint: object = None
    source: str | None = None
    alpha: float | None = None
    sam_model: str | None = None
    config: object = None


KEYS = tuple(f.name for f in fields(MaskChoice))  # a CTC config's masks section holds these


# what each SAM-only setting is, said when it is given where SAM makes no masks
_SAM_ONLY = {"alpha": "SAM's threshold α applies to masks made here from its weights",
             "sam_model": "it names the model of SAM's weights",
             "config": "it holds the settings of SAM's mask generator"}

CLI_NAMES = {"masks": "--masks", "sam_checkpoint": "--sam-checkpoint", "source": "--mask-source",
             "alpha": "--alpha", "sam_model": "--sam-model"}
"""``vcm fit``'s option for each field (it has none for ``config``: a fit uses the default generator settings)."""


def check_choice(choice: MaskChoice, names: dict[str, str] | None = None, prefix: str = "") -> None:
    """Refuse, in one line naming what the user wrote (``names``: field → option or key, the field's own name
    where absent; ``prefix`` before the message, e.g. ``"sa-hinerv masks: "``), a choice that:

    - gives α outside [0, 1] or an unknown SAM model, or α, the SAM model or generator settings without SAM's
      weights;
    - names ``source: sam`` without weights, or an unknown source;
    - names a mask file beside a source or SAM's weights, or SAM's weights beside a source other than SAM.

    Whether masks are needed at all (the loss) is the caller's; so is whether the named files exist."""
    from vcm.masks.sam import check_alpha, check_sam_model

    def name(field: str) -> str:
        return (names or {}).get(field, field)

    def refuse(message: str) -> None:
        raise VcmError(prefix + message)

    check_alpha(choice.alpha, prefix + name("alpha"))
    try:  # refused once the frames were read (vcm fit), or in every point (a config)
        check_sam_model(choice.sam_model)
    except VcmError as err:
        refuse(f"{name('sam_model')}: {err}")
    if choice.sam_checkpoint is None:
        for field, why in _SAM_ONLY.items():
            if getattr(choice, field) is not None:
                refuse(f"{name(field)} does not apply to a fit without {name('sam_checkpoint')} ({why})")
    if choice.source is not None:
        from vcm.masks.sources import parse_source

        kind = parse_source(choice.source)[0]
        if kind == "sam" and choice.sam_checkpoint is None:
            refuse(f"{name('source')} sam needs {name('sam_checkpoint')} PATH")
        if choice.masks is not None:
            refuse(f"{name('masks')} and {name('source')} both name edge masks; pass one")
        if kind != "sam" and choice.sam_checkpoint is not None:  # the source made the masks; the weights unread
            refuse(f"{name('sam_checkpoint')} does not apply to {name('source')} {choice.source} (SAM's weights "
                   f"make masks only for {name('source')} sam)")
    if choice.masks is not None and choice.sam_checkpoint is not None:  # the file was read and the weights never
        refuse(f"{name('masks')} and {name('sam_checkpoint')} both name edge masks (a file, and weights to make "
               f"them); pass one")
