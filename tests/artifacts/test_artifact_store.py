"""The artifact store's contract, run against a local folder, memory and S3 (a moto server)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from loopml.artifacts.store import ArtifactStore
from loopml.errors import (
    ArtifactCorruptedError,
    ArtifactNotFoundError,
    StoreUnavailableError,
    UnknownSchemeError,
)
from loopml.hashing import sha256_bytes


@pytest.fixture(params=["file", "memory", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    if request.param == "file":
        return ArtifactStore(str(tmp_path / "artifacts"))
    if request.param == "memory":
        return ArtifactStore(f"memory://loopml-{uuid.uuid4().hex}")
    endpoint = request.getfixturevalue("s3_endpoint")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    bucket = f"loopml-{uuid.uuid4().hex[:12]}"
    store = ArtifactStore(f"s3://{bucket}/artifacts", storage_options={"endpoint_url": endpoint})
    store.fs.mkdir(bucket)
    return store


def tamper(store: ArtifactStore, digest: str, data: bytes) -> None:
    with store.fs.open(store.path_of(digest), "wb") as stream:
        stream.write(data)
    store.fs.invalidate_cache()


def test_bytes_round_trip_under_their_hash(store: ArtifactStore) -> None:
    digest = store.put_bytes(b"hello")
    assert digest == sha256_bytes(b"hello")
    assert store.exists(digest)
    assert store.get_bytes(digest) == b"hello"


def test_storing_the_same_content_twice_keeps_one_object(store: ArtifactStore) -> None:
    first, second = store.put_bytes(b"same"), store.put_bytes(b"same")
    assert first == second
    assert len(store.fs.find(f"{store.root}/objects")) == 1


def test_files_are_hashed_while_copied(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    data = bytes(range(256)) * 20_000  # several chunks
    source.write_bytes(data)
    digest = store.put_file(source)
    assert digest == sha256_bytes(data)
    copy = store.get_file(digest, tmp_path / "out" / "copy.bin")
    assert copy.read_bytes() == data


def test_no_temporary_files_are_left_behind(store: ArtifactStore, tmp_path: Path) -> None:
    store.put_bytes(b"a")
    store.put_bytes(b"a")
    (tmp_path / "f").write_bytes(b"b")
    store.put_file(tmp_path / "f")
    leftovers = store.fs.find(f"{store.root}/tmp") if store.fs.exists(f"{store.root}/tmp") else []
    assert leftovers == []


def test_changed_bytes_are_refused(store: ArtifactStore, tmp_path: Path) -> None:
    digest = store.put_bytes(b"original content")
    tamper(store, digest, b"tampered content")
    with pytest.raises(ArtifactCorruptedError, match=f"sha256:{digest} .* corrupted"):
        store.get_bytes(digest)
    with pytest.raises(ArtifactCorruptedError):
        store.verify(digest)
    destination = tmp_path / "never.bin"
    with pytest.raises(ArtifactCorruptedError):
        store.get_file(digest, destination)
    assert not destination.exists()
    assert list(tmp_path.glob(".partial-*")) == []


def test_truncated_bytes_are_refused(store: ArtifactStore) -> None:
    digest = store.put_bytes(b"0123456789")
    tamper(store, digest, b"01234")
    with pytest.raises(ArtifactCorruptedError):
        store.get_bytes(digest)


def test_missing_objects_are_reported(store: ArtifactStore) -> None:
    with pytest.raises(ArtifactNotFoundError, match="has no object sha256:"):
        store.get_bytes("0" * 64)


def test_unknown_schemes_list_the_known_ones() -> None:
    with pytest.raises(UnknownSchemeError, match="'ftp://'.*file://.*memory://.*s3://"):
        ArtifactStore("ftp://example/artifacts")


def test_a_failed_write_leaves_nothing_and_says_what_failed(
    store: ArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_move(temporary: str, digest: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "_move_into_place", broken_move)
    with pytest.raises(StoreUnavailableError, match="failed to store an object.*No space left"):
        store.put_bytes(b"never stored")
    assert store.fs.find(f"{store.root}/tmp") == []
    assert not store.exists(sha256_bytes(b"never stored"))
