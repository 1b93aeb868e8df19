"""YAML as people write it: ``lr: 2e-3`` is a number.

PyYAML follows YAML 1.1, whose floats need a dot and a signed exponent: ``2e-3``, ``1e5`` and ``1.0e30`` were
read as strings, and a config's ``lr: 2e-3`` was refused as "must be a number, got '2e-3'".
:func:`load_yaml` reads numbers as YAML 1.2 (and Python) do; everything else is ``yaml.safe_load``'s.
"""

from __future__ import annotations

import re

import yaml


class DuplicateKey(yaml.MarkedYAMLError):
    """A mapping that names one key twice: YAML keeps the last, and what the first said was lost unseen."""


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that reads numbers as YAML 1.2 does (one with an exponent is a float, with or without a
    dot or the exponent's sign; no base-60 or leading-0 octal numbers), and refuses a key written twice in one
    mapping (a config's second ``codecs:`` dropped the first's codecs without a word). Keys a merge (``<<: *anchor``)
    brings may still be overridden."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = self.construct_object(key_node)
                if key in seen:
                    raise DuplicateKey(None, None, f"the key {key!r} is written twice in one mapping (first on "
                                       f"line {seen[key] + 1}); YAML would keep only the last", key_node.start_mark)
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


_INT, _FLOAT = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
# YAML 1.1's base-60 numbers are gone, as in YAML 1.2: a sequence's `frames: 10:20` was the integer 620 (and refused
# as "got 620"), while `frames: 0:20` stayed the span; so are its octal numbers written with a leading 0 (`017` was
# 15). Such words are strings now, refused or taken as what they say by the option that reads them.
_Loader.yaml_implicit_resolvers = {first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT, _FLOAT)]
                                   for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(_INT, re.compile(r"^[-+]?(?:0b[0-1_]+|0x[0-9a-fA-F_]+|0|[1-9][0-9_]*)$"),
                              list("-+0123456789"))
_Loader.add_implicit_resolver(_FLOAT, re.compile(r"^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?"
                                                 r"|[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?"
                                                 r"|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+"
                                                 r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"), list("-+.0123456789"))


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
        raise VcmError(f"{path}{_where(err)}: {_what_is_wrong(err)}") from None


def _where(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    return f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def _what_is_wrong(err: yaml.YAMLError) -> str:
    """PyYAML's problem in words: "found character '\\t' that cannot start any token" said as the tab it is."""
    if isinstance(err, DuplicateKey):
        return err.problem
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    if "'\\t'" in problem:
        return "not valid YAML (a tab: YAML indents with spaces only)"
    return f"not valid YAML ({problem})"
