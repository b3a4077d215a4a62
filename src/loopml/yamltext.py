"""Where in a YAML text a value sits, so errors about a file can name its line."""

from __future__ import annotations

from typing import Any

import yaml

SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: much faster


def line_of(text: str | None, path: tuple[Any, ...]) -> str:
    """' (line N)' for the deepest node of a YAML text along a path of keys and indexes, or ''
    when there is no text or the path leads nowhere."""
    if text is None:
        return ""
    try:
        found = yaml.compose(text, Loader=SafeLoader)
    except yaml.YAMLError:
        return ""
    for part in path:
        child = _child(found, part)
        if child is None:
            break
        found = child
    if found is None:
        return ""
    return f" (line {found.start_mark.line + 1})"


def _child(node: yaml.Node | None, part: Any) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == str(part):
                return value
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return node.value[part]
    return None


def yaml_error_line(error: yaml.YAMLError) -> str:
    """' line N' of a YAML syntax error, when it knows one."""
    mark = getattr(error, "problem_mark", None)
    return f" line {mark.line + 1}" if mark is not None else ""
