"""The import contract of docs/architecture.md: every import of a loopml module (at the top of
a file or inside a function) points down the layers, never up, and the domain packages keep
one order, so no two of them depend on each other.

A layer is a list of module prefixes; within the core and storage layers modules use each
other freely, and every other layer holds one package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import loopml

ROOT = Path(loopml.__file__).parent

# Top to bottom.
LAYERS: list[tuple[str, list[str]]] = [
    ("interfaces", ["loopml.cli", "loopml.server", "loopml.__init__"]),
    ("loop", ["loopml.loop", "loopml.reports.monitoring", "loopml.reports.monitoring_plots"]),
    ("monitoring", ["loopml.monitoring"]),
    ("serving", ["loopml.serving"]),
    ("registry", ["loopml.registry"]),
    ("evaluation", ["loopml.evaluation"]),
    ("pipeline", ["loopml.pipeline"]),
    ("data", ["loopml.data"]),
    ("tracking", ["loopml.tracking"]),
    ("rendering", ["loopml.reports"]),
    ("storage", ["loopml.store", "loopml.artifacts", "loopml.events", "loopml.workspace"]),
    (
        "core",
        [
            "loopml.settings",
            "loopml.errors",
            "loopml.ids",
            "loopml.hashing",
            "loopml.yamltext",
            "loopml.durations",
            "loopml.lazy",
            "loopml.pickling",
            "loopml.numbers",
        ],
    ),
]


def layer_of(module: str) -> int:
    """The index of the layer a module belongs to (its longest matching prefix)."""
    best, found = -1, None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, found = len(prefix), index
    if found is None:
        raise AssertionError(f"{module} belongs to no layer: add it to LAYERS")
    return found


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    if parts[-1] == "__init__" and len(parts) > 2:
        parts = parts[:-1]
    return ".".join(parts)


def imported(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every absolute loopml import; ``from loopml import x`` names
    loopml.x when x is a module, else loopml's package itself."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("loopml")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "loopml":
                for alias in node.names:
                    name = f"loopml.{alias.name}"
                    is_module = (ROOT / alias.name).is_dir() or (ROOT / f"{alias.name}.py").exists()
                    found.append((node.lineno, name if is_module else "loopml.__init__"))
            elif node.module.startswith("loopml."):
                found.append((node.lineno, node.module))
    return [(line, "loopml.__init__" if name == "loopml" else name) for line, name in found]


def violations() -> list[str]:
    shared = {"interfaces", "loop", "storage", "core"}  # layers whose packages use each other
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        if "migrations" in path.parts:
            continue  # Alembic's scripts, run by the store
        module = module_name(path)
        mine = layer_of(module)
        for line, target in imported(ast.parse(path.read_text(), str(path))):
            theirs = layer_of(target)
            same_package = target.split(".")[:2] == module.split(".")[:2]
            if theirs > mine or same_package or (theirs == mine and LAYERS[mine][0] in shared):
                continue
            where = path.relative_to(ROOT.parent)
            found.append(
                f"{where}:{line}: {module} ({LAYERS[mine][0]}) imports {target} "
                f"({LAYERS[theirs][0]})"
            )
    return found


def test_imports_point_down_the_layers() -> None:
    assert violations() == []


def test_every_module_is_in_a_layer() -> None:
    for path in ROOT.rglob("*.py"):
        if "migrations" not in path.parts:
            layer_of(module_name(path))


def test_the_contract_catches_an_upward_import() -> None:
    """The checker itself: a registry module importing the loop is reported."""
    tree = ast.parse("def f():\n    from loopml.loop.controller import run_loop\n")
    ((line, target),) = imported(tree)
    assert (line, target) == (2, "loopml.loop.controller")
    assert layer_of(target) < layer_of("loopml.registry.api")
    assert layer_of("loopml.reports.html") > layer_of("loopml.registry.cards")
