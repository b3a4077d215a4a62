"""Batch scoring: chunks, quarantine of rows that break the contract, the same prediction log
as the server's, and parallel scoring on an executor with the same results."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import loopml
from loopml.errors import UsageError
from loopml.events import read_events
from loopml.serving import predict_batch


def _input(path, rows: int = 5000, bad: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"a": rng.normal(size=rows), "b": rng.normal(size=rows)})
    frame.loc[: bad - 1, "a"] = 50.0  # the contract allows a in [-10, 10]
    frame["passenger"] = [f"p{i}" for i in range(rows)]  # a column the model does not read
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=1000)
    return frame


def test_batch_scores_in_chunks_quarantines_and_logs(churn, tmp_path) -> None:
    frame = _input(tmp_path / "in.parquet")
    seen: list[int] = []
    result = predict_batch(
        "churn@champion",
        tmp_path / "in.parquet",
        tmp_path / "out.parquet",
        chunk_rows=1024,
        progress=lambda rows, total: seen.append(rows),
    )
    assert (result.rows, result.scored, result.quarantined) == (5000, 4993, 7)
    assert seen[-1] == 5000 and len(seen) > 1
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert list(out.columns) == ["a", "b", "passenger", "prediction_id", "score", "label"]
    model = loopml.models.load("churn@1")
    expected = model.predict_proba(frame.loc[7:, ["a", "b"]])[:, 1]
    np.testing.assert_allclose(out["score"], expected)
    assert out["passenger"].tolist() == frame["passenger"][7:].tolist()
    aside = pd.read_parquet(result.quarantine)
    assert len(aside) == 7 and aside["_loopml_reasons"].str.contains("a").all()
    logged = read_events("predictions")
    assert len(logged) == 4993 and set(logged["role"]) == {"batch"}
    assert set(logged["id"]) == set(out["prediction_id"])
    np.testing.assert_allclose(
        logged.set_index("id").loc[out["prediction_id"], "input.a"], out["a"]
    )


def test_an_executor_scores_row_groups_in_parallel_with_the_same_results(churn, tmp_path) -> None:
    _input(tmp_path / "in.parquet")
    inline = predict_batch("churn@1", tmp_path / "in.parquet", tmp_path / "a.parquet", log=False)
    parallel = predict_batch(
        "churn@1",
        tmp_path / "in.parquet",
        tmp_path / "b.parquet",
        chunk_rows=2000,
        executor="process:2",
    )
    assert (parallel.rows, parallel.quarantined) == (inline.rows, inline.quarantined)
    a, b = pd.read_parquet(tmp_path / "a.parquet"), pd.read_parquet(tmp_path / "b.parquet")
    pd.testing.assert_frame_equal(a.drop(columns="prediction_id"), b.drop(columns="prediction_id"))
    assert len(read_events("predictions")) == parallel.scored
    assert len(pd.read_parquet(parallel.quarantine)) == 7


def test_batch_refuses_to_overwrite(churn, tmp_path) -> None:
    _input(tmp_path / "in.parquet")
    (tmp_path / "out.parquet").write_bytes(b"precious")
    with pytest.raises(UsageError, match="exists already"):
        predict_batch("churn@1", tmp_path / "in.parquet", tmp_path / "out.parquet")
    assert (tmp_path / "out.parquet").read_bytes() == b"precious"
    with pytest.raises(UsageError, match="overwrite the input"):
        predict_batch("churn@1", tmp_path / "in.parquet", tmp_path / "in.parquet")


@pytest.mark.slow
def test_batch_scores_partitions_on_a_dask_cluster(churn, tmp_path) -> None:
    pytest.importorskip("distributed")
    _input(tmp_path / "in.parquet")
    inline = predict_batch("churn@1", tmp_path / "in.parquet", tmp_path / "a.parquet", log=False)
    on_dask = predict_batch(
        "churn@1", tmp_path / "in.parquet", tmp_path / "b.parquet", chunk_rows=2000, executor="dask"
    )
    assert (on_dask.rows, on_dask.scored) == (inline.rows, inline.scored)
    a, b = pd.read_parquet(tmp_path / "a.parquet"), pd.read_parquet(tmp_path / "b.parquet")
    np.testing.assert_allclose(a["score"], b["score"])
    assert len(read_events("predictions")) == on_dask.scored
