"""The docs stay true: the README opens with the two set-up commands, the CLI is documented."""

from __future__ import annotations

from pathlib import Path

import typer.main

from loopml.cli.main import app

ROOT = Path(__file__).parents[1]


def test_readme_opens_with_the_demo_and_test_commands() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    first_block = lines[: lines.index("```sh") + 4]
    assert any(line.startswith("make demo") for line in first_block)
    assert any(line.startswith("make test") for line in first_block)


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci and "LOOPML_TEST_POSTGRES_REQUIRED=1" in ci


def command_paths(group, prefix: str = "loopml") -> list[str]:
    paths = []
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        if hasattr(command, "commands"):
            paths += command_paths(command, path)
        else:
            paths.append(path)
    return paths


def test_every_command_is_in_the_cli_reference() -> None:
    reference = (ROOT / "docs" / "cli.md").read_text()
    for path in command_paths(typer.main.get_command(app)):
        assert f"`{path}" in reference, path


def test_the_contract_example_in_the_docs_is_valid() -> None:
    import loopml

    text = (ROOT / "docs" / "contracts.md").read_text()
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    contract = loopml.data.load_contract(example)
    assert contract.columns["dep_delay"].available_at == "after_prediction"
