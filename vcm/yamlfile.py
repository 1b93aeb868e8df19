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
