"""YAML as people write it: ``lr: 2e-3`` is a number.

PyYAML follows YAML 1.1, whose floats need a dot and a signed exponent: ``2e-3``, ``1e5`` and ``1.0e30`` were
read as strings, and a config's ``lr: 2e-3`` was refused as "must be a number, got '2e-3'".
:func:`load_yaml` reads them as YAML 1.2 (and Python) do; everything else is ``yaml.safe_load``'s.
"""

from __future__ import annotations

import re

import yaml


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also resolves a number with an exponent as a float, with or without a dot or
    the exponent's sign."""


_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+.0123456789"))


def load_yaml(text: str):
    """The document in ``text`` (safe: plain data only), ``2e-3`` read as a float."""
    return yaml.load(text, Loader=_Loader)


YAML_FOLDER_HINT = ": name its YAML file"


def read_yaml_file(path, what: str):
    """The YAML document in the file at ``path`` (``what`` names it in errors, e.g. "CTC config"), refused in one
    line when it is missing, a folder or another non-file, not UTF-8 text (a video or a stream given by mistake
    was a UnicodeDecodeError), or not valid YAML. A byte-order mark, as some Windows editors write, is skipped."""
    from pathlib import Path

    from vcm.errors import VcmError
    from vcm.fsutil import require_input

    path = Path(path)
    require_input(path, what, folder_hint=YAML_FOLDER_HINT)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise VcmError(f"{what} {path} is not a YAML text file (byte {err.start} is not UTF-8)") from None
    try:
        return load_yaml(text)
    except yaml.YAMLError as err:
        raise VcmError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
