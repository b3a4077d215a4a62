"""Artifacts and lineage: files, folders and objects a run wrote or read, by content hash."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

import loopml
from loopml.errors import (
    ArtifactCorruptedError,
    ArtifactExistsError,
    ArtifactNotFoundError,
    InvalidValueError,
    UsageError,
)
from loopml.hashing import sha256_bytes
from loopml.workspace import Workspace


def test_files_folders_bytes_and_objects_round_trip(workspace: Workspace, tmp_path: Path) -> None:
    (tmp_path / "confusion.png").write_bytes(b"\x89PNG...")
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(b"w" * 1000)
    (folder / "sub" / "config.json").write_text('{"depth": 6}')
    with loopml.start_run(experiment="e") as run:
        png = run.log_artifact("confusion.png")
        model = run.log_artifact(folder)
        raw = run.log_artifact(b"raw bytes", name="raw")
        obj = run.log_artifact({"weights": [1, 2, 3]}, name="state")
    assert (png.kind, png.size, png.digest) == ("file", 7, sha256_bytes(b"\x89PNG..."))
    assert (model.kind, model.size, model.name) == ("directory", 1012, "model")
    assert loopml.load_artifact(run.id, "confusion.png").read_bytes() == b"\x89PNG..."
    restored = loopml.load_artifact(run.id, "model", destination=tmp_path / "restored")
    assert (restored / "sub" / "config.json").read_text() == '{"depth": 6}'
    assert (restored / "weights.bin").read_bytes() == b"w" * 1000
    assert loopml.load_artifact(run.id, "raw") == b"raw bytes"
    assert loopml.load_artifact(run.id, "state") == {"weights": [1, 2, 3]}
    assert raw.kind == "bytes" and obj.kind == "pickle"
    assert [a.name for a in loopml.list_artifacts(run.id)] == [
        "confusion.png",
        "model",
        "raw",
        "state",
    ]


def test_empty_folders_survive_a_round_trip(workspace: Workspace, tmp_path: Path) -> None:
    (tmp_path / "tree" / "empty" / "deeper").mkdir(parents=True)
    (tmp_path / "tree" / "file.txt").write_text("x")
    with loopml.start_run(experiment="e") as run:
        run.log_artifact(tmp_path / "tree")
    restored = loopml.load_artifact(run.id, "tree")
    assert (restored / "empty" / "deeper").is_dir()
    assert (restored / "file.txt").read_text() == "x"


def test_download_writes_objects_as_their_stored_bytes(
    workspace: Workspace, tmp_path: Path
) -> None:
    with loopml.start_run(experiment="e") as run:
        run.log_artifact([1, 2], name="numbers")
    path = loopml.download_artifact(run.id, "numbers", tmp_path / "numbers.pkl")
    assert pickle.loads(path.read_bytes()) == [1, 2]


def test_equal_folders_have_equal_hashes(workspace: Workspace, tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.txt").write_text("same")
    with loopml.start_run(experiment="e") as run:
        assert run.log_artifact(tmp_path / "a").digest == run.log_artifact(tmp_path / "b").digest


def test_a_name_cannot_be_reused_for_other_content(workspace: Workspace) -> None:
    with loopml.start_run(experiment="e") as run:
        first = run.log_artifact(b"v1", name="model")
        assert run.log_artifact(b"v1", name="model") == first  # same content: fine
        with pytest.raises(ArtifactExistsError, match="already has an output named 'model'"):
            run.log_artifact(b"v2", name="model")


def test_bad_sources_are_reported(workspace: Workspace) -> None:
    with loopml.start_run(experiment="e") as run:
        with pytest.raises(ArtifactNotFoundError, match="no such file or folder"):
            run.log_artifact("missing.png")
        with pytest.raises(InvalidValueError, match="needs a name"):
            run.log_artifact({"a": 1})
        with pytest.raises(InvalidValueError, match="cannot be pickled"):
            run.log_artifact(lambda: 1, name="fn")
        with pytest.raises(InvalidValueError, match="relative name"):
            run.log_artifact(b"x", name="/etc/passwd")
    with pytest.raises(ArtifactNotFoundError, match="no output artifact named 'nope'"):
        loopml.load_artifact(run.id, "nope")


@pytest.mark.parametrize(
    "name", ["../outside.txt", "a/../../outside.txt", "..\\outside.txt", "/abs", "a\nb", ".", ""]
)
def test_a_name_that_leaves_the_run_is_refused(workspace: Workspace, name: str) -> None:
    with (
        loopml.start_run(experiment="e") as run,
        pytest.raises(InvalidValueError, match="relative name|needs a name"),
    ):
        run.log_artifact(b"x", name=name)
    assert loopml.list_artifacts(run.id) == []


def test_names_are_stored_in_one_spelling(workspace: Workspace, tmp_path: Path) -> None:
    with loopml.start_run(experiment="e") as run:
        run.log_artifact(b"x", name="./plots//roc.bin")
        run.log_artifact(b"y", name="plots\\pr.bin")
    assert sorted(a.name for a in loopml.list_artifacts(run.id)) == [
        "plots/pr.bin",
        "plots/roc.bin",
    ]
    written = loopml.download_artifact(run.id, "plots/roc.bin", tmp_path)
    assert written == tmp_path / "plots" / "roc.bin" and written.read_bytes() == b"x"


def test_a_stored_name_that_leaves_the_destination_is_not_written(
    workspace: Workspace, tmp_path: Path
) -> None:
    """A name stored before names were checked is not followed out of the destination."""
    with loopml.start_run(experiment="e") as run:
        record = run.link_output(
            "../escaped.bin", run.log_artifact(b"z", name="z").digest, "bytes", 1
        )
    target = tmp_path / "into"
    target.mkdir()
    with pytest.raises(UsageError, match="leaves"):
        loopml.download_artifact(run.id, record.name, target)
    assert not (tmp_path / "escaped.bin").exists()


def test_a_tampered_artifact_is_never_loaded(workspace: Workspace, tmp_path: Path) -> None:
    with loopml.start_run(experiment="e") as run:
        record = run.log_artifact({"safe": True}, name="state")
    stored = Path(workspace.artifacts.path_of(record.digest))
    stored.write_bytes(pickle.dumps({"safe": False}))
    with pytest.raises(ArtifactCorruptedError, match="corrupted"):
        loopml.load_artifact(run.id, "state")


def test_lineage_follows_content_from_writer_to_reader(
    workspace: Workspace, tmp_path: Path
) -> None:
    data = tmp_path / "train.csv"
    data.write_text("a,b\n1,2\n")
    with loopml.start_run(experiment="etl") as producer:
        written = producer.log_artifact(data, name="train.csv")
    with loopml.start_run(experiment="train") as by_path:
        read = by_path.log_input(data)  # hashed, not stored
    with loopml.start_run(experiment="train") as by_record:
        by_record.log_input(written)
    assert read.digest == written.digest and read.direction == "input"
    links = loopml.lineage(written.digest)
    assert [a.run_id for a in links["written_by"]] == [producer.id]
    assert sorted(a.run_id for a in links["read_by"]) == sorted([by_path.id, by_record.id])
    assert loopml.list_artifacts(by_record.id)[0].source == f"run {producer.id}: train.csv"
