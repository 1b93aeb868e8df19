"""Reading a COCO ground-truth JSON: its shape (``images`` and ``annotations`` lists) and its ids.

Both the SFU-HW loader (:mod:`vcm.eval.gt`) and the loader of any user's JSON
(:mod:`vcm.eval.annotations`) read through here, so both refuse the same malformed files with the
same one-line errors. This module imports neither of them.
"""

from __future__ import annotations

import json
from pathlib import Path

from vcm.errors import VcmError


def read_json(path: Path) -> dict:
    """The parsed JSON of ``path``, or one line saying why it is not a COCO ground truth."""
    path = Path(path)
    if not path.is_file():
        raise VcmError(f"annotations {path} do not exist (a COCO JSON file)")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))  # a byte-order mark, as some Windows editors write
    except (OSError, ValueError, UnicodeDecodeError):
        raise VcmError(f"{path} is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or not isinstance(data.get("annotations"), list):
        raise VcmError(f"{path} is not a COCO ground-truth JSON (needs 'images' and 'annotations' lists)")
    # ids key the images, the categories and the annotations' links to both: a list or a mapping there was a traceback
    for section, keys in (("images", ("id",)), ("annotations", ("image_id", "category_id")), ("categories", ("id",))):
        entries = data.get(section)
        for entry in entries if isinstance(entries, list) else []:
            for key in keys:
                value = entry.get(key) if isinstance(entry, dict) else None
                if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float, str))):
                    label = entry.get({"images": "file_name", "categories": "name"}.get(section, "id"))
                    raise VcmError(f"{path.name}: {section} entry {label!r} has the {key} {value!r}; an id is a "
                                   "number or a string")
    return data
