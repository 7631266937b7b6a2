"""YAML that refuses a key given twice in one mapping.

PyYAML keeps the last of two equal keys without a word: a family listed twice loses its first
list, a second `seeds:` silently replaces the first. A config is short and written by hand, so a
repeated key is always a mistake worth one line.
"""
from __future__ import annotations

from typing import Any

import yaml


class DuplicateKeyError(yaml.YAMLError):
    """A key given twice in one mapping; `line` is 1-based, of the second occurrence."""

    def __init__(self, key: Any, line: int, first_line: int) -> None:
        super().__init__(f"key {key!r} is given twice (lines {first_line} and {line})")
        self.key, self.line, self.first_line = key, line, first_line


class _StrictLoader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *x`: its keys may be overridden on purpose
                    continue
                key = self.construct_object(key_node, deep=deep)
                line = key_node.start_mark.line + 1
                try:
                    if key in seen:
                        raise DuplicateKeyError(key, line, seen[key])
                except TypeError:  # an unhashable key: the base class reports it
                    break
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def load_strict(text: str) -> Any:
    """`yaml.safe_load`, but a repeated key in any mapping raises DuplicateKeyError."""
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
