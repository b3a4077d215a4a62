"""Where in a YAML text a value sits, so errors about a file can name its line."""

from __future__ import annotations

from pathlib import Path
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


def read_yaml(
    source: str | Path | dict[str, Any], what: str, error: type[Exception]
) -> tuple[Any, str | None, str]:
    """(data, text, where) from a YAML file's path, YAML text or an already parsed dict.

    A string without a newline or a colon is a path. ``what`` names the document in
    messages ("the search space"); problems raise ``error`` with the file and line.
    """
    if isinstance(source, dict):
        return source, None, what
    if isinstance(source, Path) or ("\n" not in str(source) and ":" not in str(source)):
        path = Path(source)
        try:
            text, where = path.read_text(encoding="utf-8"), str(path)
        except OSError as failure:
            raise error(f"Cannot read {what} {str(path)!r}: {failure.strerror}.") from None
    else:
        text, where = str(source), what
    try:
        return yaml.load(text, Loader=SafeLoader), text, where
    except yaml.YAMLError as failure:
        raise error(f"{where}{yaml_error_line(failure)} is not valid YAML: {failure}") from None


def located_problems(errors: list[dict[str, Any]], text: str | None, skip: tuple = ()) -> str:
    """Pydantic validation errors as 'path (line N): message; ...'."""
    problems = []
    for item in errors:
        path = tuple(part for part in item["loc"] if part not in skip)
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{'.'.join(map(str, path))}{line_of(text, path)}: {message}")
    return "; ".join(problems)
