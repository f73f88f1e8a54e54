"""Params files as YAML: the strict loader (YAML 1.2 core scalars, as DVC reads params.yaml; no
duplicate key, no alias, bounded nesting) and ``read_yaml``, whose errors name the file.

Imports only ``errors``; ``config`` validates what it returns.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml

from image_completion.errors import ConfigError, clip, open_regular

MAX_DEPTH = 20  # nesting of mappings and lists in a params file (params.yaml uses 4)


class _StrictLoader(yaml.SafeLoader):
    """YAML 1.2 core scalars (as DVC reads params.yaml); no duplicate key, no alias, bounded nesting.

    ``1:30``, ``010``, ``0x1F``, ``1_000``, ``yes``/``on`` stay strings (YAML 1.1 read them as
    numbers or booleans), so a typed key refuses them; an alias could expand exponentially.
    """

    yaml_implicit_resolvers: dict = {}

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed; write the value out", mark)
        depth = getattr(self, "_depth", 0)
        if depth >= MAX_DEPTH:
            raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", self.peek_event().start_mark)
        self._depth = depth + 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth = depth

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, Hashable) and key in seen:  # an unhashable key: SafeLoader says so
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {clip(repr(key))} (the earlier one would be ignored)", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


for _tag, _pattern, _first in (
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("int", r"^[-+]?(?:0|[1-9][0-9]{0,17})$", "-+0123456789"),  # 18 digits: no 5000-digit int() call
    # A float has a point or an exponent (a longer run of digits is a string, not inf).
    (
        "float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*|[0-9]+(?=[eE]))(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+.0123456789",
    ),
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
):
    _StrictLoader.add_implicit_resolver(f"tag:yaml.org,2002:{_tag}", re.compile(_pattern), list(_first))


def _read_text(path: Path) -> str:
    """The params file's text: a missing file, a folder, a pipe or bytes that are not UTF-8 -> ConfigError."""
    try:
        with open_regular(path, ConfigError) as fh:
            data = fh.read()
    except FileNotFoundError:
        raise ConfigError(f"{path}: params file not found") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the params file: {err.strerror or err}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start}); save the params file as UTF-8") from None


def read_yaml(path: Path) -> Any:
    """A YAML file read by ``_StrictLoader``; unreadable or invalid -> ``ConfigError`` naming the file."""
    text = _read_text(path)
    loader = _StrictLoader(text)
    loader.name = path.name  # marks say 'in "params.yaml", line 8'
    try:
        return loader.get_single_data()
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {clip(' '.join(str(err).split()))}") from None
    finally:
        loader.dispose()
