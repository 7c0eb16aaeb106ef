"""A version-1 schedule file as YAML text (what ``reconciler export`` writes).

ruamel's round-trip dumper, in block style, names sorted, with a header comment. Two
changes to its defaults keep the text unambiguous to every reader, not only to this
project's YAML 1.2 loader: strings holding invisible or control characters are always
double-quoted with escapes (ruamel writes some of them raw inside single quotes, where a
reader folds them into spaces), and strings a YAML 1.1 reader would take for booleans or
sexagesimal numbers (``yes``, ``on``, ``12:30``) are quoted.
"""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING, Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.representer import RoundTripRepresenter

from reconciler.load.file_format import FORMAT_VERSION

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ruamel.yaml.nodes import ScalarNode

_YAML_11_LOOKALIKE = re.compile(
    r"^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF"
    r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?)$"
)
# Long lines rather than folded ones: one value per line reads and diffs better.
_WIDTH = 4096


class _Representer(RoundTripRepresenter):
    """ruamel's, with the two changes above and ``null`` spelt out: a subclass, so that
    registering representers never changes ruamel's own class."""


def _represent_str(representer: _Representer, value: str) -> ScalarNode:
    style = None
    if not value.isprintable():
        style = '"'
    elif _YAML_11_LOOKALIKE.match(value):
        style = "'"
    return representer.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _represent_none(representer: _Representer, _value: None) -> ScalarNode:
    return representer.represent_scalar("tag:yaml.org,2002:null", "null")


_Representer.add_representer(str, _represent_str)
_Representer.add_representer(type(None), _represent_none)


def schedule_file_yaml(entries: Mapping[str, Mapping[str, Any]], header: str = "") -> str:
    """``version: 1`` and ``schedules`` holding ``entries`` (name -> entry keys), as YAML."""
    schedules = CommentedMap((name, entries[name]) for name in sorted(entries))
    document = CommentedMap(version=FORMAT_VERSION, schedules=schedules)
    if header:
        document.yaml_set_start_comment(header)
    yaml = YAML()
    yaml.Representer = _Representer
    yaml.default_flow_style = False
    yaml.width = _WIDTH
    yaml.indent(mapping=2, sequence=4, offset=2)
    stream = io.StringIO()
    yaml.dump(document, stream)
    return stream.getvalue()
