"""The metadata store's contract, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from loopml.errors import ParamConflictError, RunNotFoundError, WorkspaceTooNewError
from loopml.store import experiments as experiments_repo
from loopml.store import lineage as lineage_repo
from loopml.store import metrics as metrics_repo
from loopml.store import query as query_repo
from loopml.store import runs as runs_repo
from loopml.store.metadata import MetadataStore
from loopml.store.migrate import HEAD, stored_revision
from loopml.store.schema import metadata as schema_metadata


def run_row(run_id: str, experiment_id: str, **extra: object) -> dict[str, object]:
    now = extra.pop("start_time", time.time())
    return {
        "id": run_id,
        "experiment_id": experiment_id,
        "status": "running",
        "start_time": now,
        "heartbeat_at": now,
        "host": "test-host",
        "pid": 1,
        "user_name": "tester",
        "command": "pytest",
        "python_version": "3.11",
        **extra,
    }


@pytest.fixture
def store(metadata_url: str) -> MetadataStore:
    store = MetadataStore(metadata_url)
    store.ensure_schema()
    yield store
    store.dispose()


@pytest.fixture
def experiment(store: MetadataStore) -> str:
    with store.write() as connection:
        return experiments_repo.get_or_create(connection, "exp", time.time())


def add_run(store: MetadataStore, experiment: str, run_id: str, **extra: object) -> str:
    with store.write() as connection:
        runs_repo.insert_run(connection, run_row(run_id, experiment, **extra))
    return run_id


def test_migrations_build_exactly_the_declared_schema(store: MetadataStore) -> None:
    with store.engine.connect() as connection:
        assert stored_revision(connection) == HEAD
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, schema_metadata) == []


def test_opening_again_keeps_the_data(metadata_url: str, store: MetadataStore, experiment: str):
    add_run(store, experiment, "a" * 16)
    again = MetadataStore(metadata_url)
    again.ensure_schema()
    with again.read() as connection:
        assert [r.id for r in runs_repo.load_runs(connection, ["a" * 16])] == ["a" * 16]
    again.dispose()


def test_a_store_from_a_newer_schema_is_refused(metadata_url: str, store: MetadataStore) -> None:
    with store.engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999_future'"))
    newer = MetadataStore(metadata_url)
    with pytest.raises(WorkspaceTooNewError, match="9999_future.*pip install --upgrade loopml"):
        newer.ensure_schema()
    newer.dispose()


def test_params_keep_their_types(store: MetadataStore, experiment: str) -> None:
    run_id = add_run(store, experiment, "b" * 16)
    values = {"lr": 0.1, "depth": 6, "name": "gbm", "flag": True, "none": None, "grid": [1, 2]}
    with store.write() as connection:
        runs_repo.log_params(connection, run_id, values)
        runs_repo.log_params(connection, run_id, {"lr": 0.1, "depth": 6.0})  # same values
    with store.read() as connection:
        assert runs_repo.load_runs(connection, [run_id])[0].params == values


def test_a_param_cannot_change(store: MetadataStore, experiment: str) -> None:
    run_id = add_run(store, experiment, "c" * 16)
    with store.write() as connection:
        runs_repo.log_params(connection, run_id, {"lr": 0.1})
    with pytest.raises(ParamConflictError, match="'lr'.*already 0.1.*0.2"), store.write() as c:
        runs_repo.log_params(c, run_id, {"lr": 0.2, "other": 1})
    with store.read() as connection:  # the whole batch was refused
        assert runs_repo.load_runs(connection, [run_id])[0].params == {"lr": 0.1}


def test_metric_history_and_latest_value(store: MetadataStore, experiment: str) -> None:
    run_id = add_run(store, experiment, "d" * 16)
    with store.write() as connection:
        metrics_repo.insert_values(
            connection, run_id, [("loss", 0.5, 1, 10.0), ("loss", 0.4, 2, 11.0)]
        )
    with store.write() as connection:  # an older step arriving late does not become latest
        metrics_repo.insert_values(
            connection, run_id, [("loss", 0.9, 0, 12.0), ("auc", 0.7, 0, 12.0)]
        )
    with store.read() as connection:
        history = metrics_repo.history(connection, run_id, "loss")
        summaries = {s.key: s for s in metrics_repo.summaries(connection, run_id)}
        record = runs_repo.load_runs(connection, [run_id])[0]
    assert [(p.step, p.value) for p in history] == [(0, 0.9), (1, 0.5), (2, 0.4)]
    assert summaries["loss"].value == 0.4 and summaries["loss"].count == 3
    assert record.metrics == {"loss": 0.4, "auc": 0.7}


def test_tags_are_replaced(store: MetadataStore, experiment: str) -> None:
    run_id = add_run(store, experiment, "e" * 16)
    with store.write() as connection:
        runs_repo.set_tags(connection, run_id, {"team": "ops", "stage": "dev"})
        runs_repo.set_tags(connection, run_id, {"stage": "prod"})
    with store.read() as connection:
        assert runs_repo.load_runs(connection, [run_id])[0].tags == {"team": "ops", "stage": "prod"}


def test_run_ids_resolve_by_unique_prefix(store: MetadataStore, experiment: str) -> None:
    add_run(store, experiment, "abc0000000000001")
    add_run(store, experiment, "abc0000000000002")
    with store.read() as connection:
        assert runs_repo.resolve_id(connection, "ABC0000000000001") == "abc0000000000001"
        with pytest.raises(RunNotFoundError, match="matches several runs"):
            runs_repo.resolve_id(connection, "abc")
        with pytest.raises(RunNotFoundError, match="No run has the id 'fff'"):
            runs_repo.resolve_id(connection, "fff")
        with pytest.raises(RunNotFoundError, match="not a run id"):
            runs_repo.resolve_id(connection, "run-1")


def test_concurrent_creation_of_one_experiment_gives_one_id(store: MetadataStore) -> None:
    ids: list[str] = []

    def create() -> None:
        with store.write() as connection:
            ids.append(experiments_repo.get_or_create(connection, "shared", time.time()))

    threads = [threading.Thread(target=create) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == 6 and len(set(ids)) == 1


def test_dead_and_silent_runs_are_marked_killed(store: MetadataStore, experiment: str) -> None:
    now = time.time()
    add_run(store, experiment, "1" * 16, pid=111)  # dead process on this host
    add_run(store, experiment, "2" * 16, pid=222)  # alive
    add_run(store, experiment, "3" * 16, pid=333, host="elsewhere", heartbeat_at=now - 1000)
    add_run(store, experiment, "4" * 16, pid=444, host="elsewhere", heartbeat_at=now - 10)
    with store.write() as connection:
        killed = runs_repo.mark_dead_runs_killed(
            connection, host="test-host", now=now, stale_after=300, is_alive=lambda pid: pid != 111
        )
    assert sorted(killed) == ["1" * 16, "3" * 16]
    with store.read() as connection:
        records = {
            r.id: r
            for r in runs_repo.load_runs(connection, ["1" * 16, "2" * 16, "3" * 16, "4" * 16])
        }
    assert {k: r.status for k, r in records.items()} == {
        "1" * 16: "killed",
        "2" * 16: "running",
        "3" * 16: "killed",
        "4" * 16: "running",
    }
    assert "stopped without ending" in (records["1" * 16].error or "")


def test_lineage_links_runs_by_content_hash(store: MetadataStore, experiment: str) -> None:
    producer, consumer = add_run(store, experiment, "5" * 16), add_run(store, experiment, "6" * 16)
    digest = "ab" * 32
    common = {"digest": digest, "kind": "file", "size": 3, "source": None, "created_at": 1.0}
    with store.write() as connection:
        lineage_repo.link(
            connection, {"run_id": producer, "direction": "output", "name": "x", **common}
        )
        lineage_repo.link(
            connection, {"run_id": consumer, "direction": "input", "name": "x", **common}
        )
    with store.read() as connection:
        assert [a.run_id for a in lineage_repo.by_digest(connection, digest, "output")] == [
            producer
        ]
        assert [a.run_id for a in lineage_repo.by_digest(connection, digest, "input")] == [consumer]
        assert lineage_repo.find(connection, producer, "output", "x").digest == digest


# --- search -------------------------------------------------------------------------------


@pytest.fixture
def searchable(store: MetadataStore, experiment: str) -> MetadataStore:
    """Five runs with known params, metrics and tags."""
    table = [
        # id,   lr,    opt,    auc,  loss, team,  status,     start
        ("r1", 0.1, "adam", 0.71, 0.30, "ops", "finished", 100.0),
        ("r2", 0.1, "sgd", 0.65, 0.40, "ops", "finished", 200.0),
        ("r3", 0.01, "adam", 0.80, 0.20, "ml", "failed", 300.0),
        ("r4", 1.0, "adam", None, 0.50, None, "finished", 400.0),
        ("r5", None, None, 0.75, None, "ml", "running", 500.0),
    ]
    for name, lr, opt, auc, loss, team, status, start in table:
        run_id = name.ljust(16, "0")
        add_run(
            store,
            experiment,
            run_id,
            name=name,
            status=status,
            start_time=start,
            end_time=start + 10 if status != "running" else None,
        )
        params = {k: v for k, v in {"lr": lr, "opt": opt}.items() if v is not None}
        metrics = [(k, v, 0, start) for k, v in {"auc": auc, "loss": loss}.items() if v is not None]
        with store.write() as connection:
            runs_repo.log_params(connection, run_id, params)
            metrics_repo.insert_values(connection, run_id, metrics)
            if team:
                runs_repo.set_tags(connection, run_id, {"team": team})
    return store


SEARCHES = [
    ("metrics.auc > 0.7 and params.lr = 0.1", None, ["r1"]),
    ("metrics.auc > 0.7", "-metrics.auc", ["r3", "r5", "r1"]),
    ("metrics.auc >= 0.65 or metrics.loss > 0.45", "metrics.auc", ["r2", "r1", "r5", "r3", "r4"]),
    ("params.opt = adam and not tags.team = ml", "start_time", ["r1", "r4"]),
    ("params.opt in ('sgd', 'rmsprop')", None, ["r2"]),
    ("params.opt not in (sgd)", "name", ["r1", "r3", "r4"]),
    ("metrics.auc is null", None, ["r4"]),
    ("params.lr is not null and params.lr < 0.5", "-params.lr", ["r2", "r1", "r3"]),
    ("status = finished", "-start_time", ["r4", "r2", "r1"]),
    ("status != 'finished'", "name", ["r3", "r5"]),
    ("tags.team like 'o%'", "name", ["r1", "r2"]),
    ("tags.team like 'O_S'", "name", ["r1", "r2"]),  # case-insensitive on every backend
    ("name like 'r_'", "name", ["r1", "r2", "r3", "r4", "r5"]),
    ("name like 'r\\_'", None, []),  # an escaped _ matches only itself
    ("status like 'fin%'", "name", ["r1", "r2", "r4"]),
    ("params.lr < 99999999999999999999", "name", ["r1", "r2", "r3", "r4"]),
    ("seed is null and params.lr = 1", None, ["r4"]),
    ("name like 'r%' and duration >= 10", "-metrics.loss", ["r4", "r2", "r1", "r3"]),
    ("experiment = exp and start_time > 250", "start_time", ["r3", "r4", "r5"]),
    ("(metrics.loss < 0.35 or metrics.auc > 0.79) and params.opt = 'adam'", None, ["r3", "r1"]),
    (None, "-params.opt,name", ["r2", "r1", "r3", "r4", "r5"]),
    (None, None, ["r5", "r4", "r3", "r2", "r1"]),
]


@pytest.mark.parametrize(("where", "sort", "expected"), SEARCHES)
def test_search(
    searchable: MetadataStore, where: str | None, sort: str | None, expected: list[str]
):
    with searchable.read() as connection:
        ids = query_repo.search(connection, where=where, sort=sort)
    assert [run_id[:2] for run_id in ids] == expected


def test_search_limits_and_filters_by_experiment(searchable: MetadataStore) -> None:
    with searchable.write() as connection:
        other = experiments_repo.get_or_create(connection, "other", 0.0)
        assert len(query_repo.search(connection, limit=2)) == 2
        assert query_repo.search(connection, experiment_ids=[other]) == []


def test_a_store_at_an_older_revision_is_upgraded_in_place(metadata_url: str) -> None:
    from alembic import command

    from loopml.store.engine import create_engine, write_transaction
    from loopml.store.migrate import _alembic_config

    engine = create_engine(metadata_url)
    with write_transaction(engine) as connection:
        command.upgrade(_alembic_config(connection), "0001")
    with engine.begin() as connection:
        experiment = experiments_repo.get_or_create(connection, "old", 1.0)
        runs_repo.insert_run(connection, run_row("0" * 16, experiment))
    engine.dispose()
    store = MetadataStore(metadata_url)
    store.ensure_schema()
    with store.read() as connection:
        assert stored_revision(connection) == HEAD
        assert [r.id for r in runs_repo.load_runs(connection, ["0" * 16])] == ["0" * 16]
        assert sa.inspect(connection).has_table("snapshots")
    store.dispose()


def test_a_lease_has_one_holder_until_it_expires_or_is_released(store: MetadataStore) -> None:
    from loopml.store import leases

    def take(holder: str, now: float):
        with store.write() as connection:
            return leases.acquire(connection, "loop:x", holder, 10.0, now)

    first = take("a", 100.0)
    assert first is not None and (first.holder, first.term, first.expires_at) == ("a", 1, 110.0)
    assert take("b", 105.0) is None  # held
    renewed = take("a", 108.0)
    assert renewed is not None and (renewed.term, renewed.expires_at) == (1, 118.0)
    assert take("b", 117.9) is None
    taken = take("b", 118.5)  # expired: it changes hands, in a new term
    assert taken is not None and (taken.holder, taken.term) == ("b", 2)
    assert take("a", 119.0) is None  # the old holder does not get it back by renewing
    with store.write() as connection:
        leases.release(connection, "loop:x", "a")  # not its holder: nothing happens
    assert take("a", 120.0) is None
    with store.write() as connection:
        leases.release(connection, "loop:x", "b")
    back = take("a", 120.0)
    assert back is not None and back.term == 3
    with store.read() as connection:
        assert leases.holder(connection, "loop:x").holder == "a"
        assert leases.holder(connection, "loop:y") is None


def test_concurrent_takers_of_a_new_lease_get_one_holder(store: MetadataStore) -> None:
    from loopml.store import leases

    barrier, won = threading.Barrier(4), []

    def take(holder: str) -> None:
        barrier.wait()
        with store.write() as connection:
            if leases.acquire(connection, "loop:new", holder, 60.0, time.time()):
                won.append(holder)

    threads = [threading.Thread(target=take, args=(f"h{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
