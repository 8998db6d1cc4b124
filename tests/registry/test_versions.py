"""The model registry: versions, aliases, audit entries and a compare-and-set promotion that holds under a race."""

from __future__ import annotations

import multiprocessing
import os
import queue
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlops import registry
from mlops.errors import PromotionConflict, RegistryError

NAME = "tiny"
RACERS = 6


@pytest.fixture(scope="session")
def model_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small saved scikit-learn model; the registry tests only need something to register."""
    import mlflow.sklearn
    import numpy as np
    from sklearn.dummy import DummyClassifier

    path = tmp_path_factory.mktemp("model") / "model"
    mlflow.sklearn.save_model(
        DummyClassifier().fit(np.zeros((4, 1)), [0, 1, 0, 1]), str(path), pip_requirements=[]
    )
    return path.as_uri()


def _register(model_uri: str, count: int) -> list[int]:
    return [registry.register_version(NAME, model_uri, "", {"mlops.n": str(i)}) for i in range(count)]


def _events(version: int) -> list[str]:
    return [entry["event"] for entry in registry.audit_trail(NAME, version)]


# Versions and aliases -----------------------------------------------------------------------------------------
@pytest.mark.unit
def test_register_version_numbers_versions_and_moves_challenger(store_home: Path, model_uri: str) -> None:
    assert registry.register_version(NAME, model_uri, "", {"mlops.data_hash": "abc"}) == 1
    assert registry.alias_version(NAME, registry.CHALLENGER) == 1
    assert registry.register_version(NAME, model_uri, "", {"mlops.data_hash": "def"}) == 2
    assert registry.alias_version(NAME, registry.CHALLENGER) == 2

    assert registry.get_version(NAME, 1).tags["mlops.data_hash"] == "abc"
    assert registry.client().get_registered_model(NAME).tags["mlops.pipeline"] == NAME
    assert registry.alias_version(NAME, registry.CHAMPION) is None  # registering never promotes


@pytest.mark.unit
def test_alias_version_is_none_when_missing(store_home: Path) -> None:
    assert registry.alias_version("no_such_model", registry.CHAMPION) is None


@pytest.mark.unit
def test_registering_a_run_twice_gives_its_first_version_again(store_home: Path) -> None:
    """A retried register task (its worker died after MLflow registered) must not make a second version."""
    import mlflow
    import mlflow.sklearn
    import numpy as np
    from sklearn.dummy import DummyClassifier

    mlflow.set_tracking_uri(f"sqlite:///{store_home / 'mlflow.db'}")
    with mlflow.start_run() as run:
        logged = mlflow.sklearn.log_model(
            DummyClassifier().fit(np.zeros((4, 1)), [0, 1, 0, 1]), name="model", pip_requirements=[]
        )
    first = registry.register_version(NAME, logged.model_uri, run.info.run_id, {})

    assert registry.register_version(NAME, logged.model_uri, run.info.run_id, {}) == first
    assert len(registry.client().search_model_versions(f"name='{NAME}'")) == 1
    assert registry.alias_version(NAME, registry.CHALLENGER) == first


@pytest.mark.unit
def test_register_version_of_a_missing_run_is_a_registry_error(store_home: Path) -> None:
    with pytest.raises(
        RegistryError, match="cannot register runs:/0123456789abcdef/model as a version of 'tiny'"
    ):
        registry.register_version(NAME, "runs:/0123456789abcdef/model", "0123456789abcdef", {})


@pytest.mark.unit
def test_audit_trail_is_oldest_first(store_home: Path, model_uri: str) -> None:
    [version] = _register(model_uri, 1)
    assert registry.audit_trail(NAME, version) == []
    details = {"by": "alice", "reason": "first"}
    first = registry.record_audit(NAME, version, "note", details)
    second = registry.record_audit(NAME, version, "other", {"reason": "second"})

    assert registry.audit_trail(NAME, version) == [first, second]
    assert first["by"] == "alice" and second["by"]  # someone is always named
    assert details == {"by": "alice", "reason": "first"}, "the caller's dict is left alone"


# Compare-and-set promotion ------------------------------------------------------------------------------------
@pytest.mark.unit
def test_promote_succeeds_when_the_champion_is_as_expected(store_home: Path, model_uri: str) -> None:
    _register(model_uri, 2)

    entry = registry.promote(NAME, 1, None, audit={"by": "ci", "reason": "first model"})
    assert registry.alias_version(NAME, registry.CHAMPION) == 1
    assert (entry["event"], entry["from_version"], entry["to_version"], entry["by"]) == (
        "promoted",
        None,
        1,
        "ci",
    )

    registry.promote(NAME, 2, 1, audit={"by": "ci", "reason": "better"})
    assert registry.alias_version(NAME, registry.CHAMPION) == 2
    assert registry.get_version(NAME, 2).tags["deploy.status"] == "champion"
    old = registry.get_version(NAME, 1).tags
    assert (old["deploy.status"], old["deploy.replaced_by"]) == ("retired", "2")
    assert _events(1) == ["promoted", "retired"]
    assert _events(2) == ["promoted"]
    assert registry.audit_trail(NAME, 2)[0]["from_version"] == 1


@pytest.mark.unit
def test_promote_refuses_when_the_champion_moved(store_home: Path, model_uri: str) -> None:
    _register(model_uri, 3)
    registry.promote(NAME, 1, None, audit={"reason": "first"})

    with pytest.raises(
        PromotionConflict, match="gated against champion \\(none\\), but the champion is now v1"
    ):
        registry.promote(NAME, 2, None, audit={"reason": "stale"})
    with pytest.raises(PromotionConflict, match="gated against champion v3, but the champion is now v1"):
        registry.promote(NAME, 2, 3, audit={"reason": "stale"})

    assert registry.alias_version(NAME, registry.CHAMPION) == 1
    assert _events(2) == []
    assert "deploy.status" not in registry.get_version(NAME, 2).tags
    assert _events(1) == ["promoted"]


@pytest.mark.unit
def test_promoting_the_champion_again_does_not_retire_it(store_home: Path, model_uri: str) -> None:
    _register(model_uri, 1)
    registry.promote(NAME, 1, None, audit={"reason": "first"})
    registry.promote(NAME, 1, 1, audit={"reason": "again"})

    assert registry.alias_version(NAME, registry.CHAMPION) == 1
    assert registry.get_version(NAME, 1).tags["deploy.status"] == "champion"
    assert "retired" not in _events(1)


@pytest.mark.unit
def test_promote_records_actor_reason_and_evidence(store_home: Path, model_uri: str) -> None:
    _register(model_uri, 1)
    entry = registry.promote(
        NAME, 1, None, audit={"by": "bob", "reason": "gate passed", "evidence": {"roc_auc": 0.99}}
    )
    assert registry.audit_trail(NAME, 1) == [entry]
    assert (entry["by"], entry["reason"], entry["evidence"]) == ("bob", "gate passed", {"roc_auc": 0.99})
    with pytest.raises(PromotionConflict):
        registry.promote(NAME, 1, None, audit={"by": "bob", "reason": "again"})


@pytest.mark.unit
def test_promotion_lock_of_a_relative_sqlite_uri_sits_beside_the_database(
    store_home: Path, model_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(store_home)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")  # relative to the working directory
    _register(model_uri, 1)
    root_lock = Path("/mlflow.tiny.promote.lock")
    existed = root_lock.exists()

    registry.promote(NAME, 1, None, audit={"reason": "relative"})

    assert (store_home / "mlflow.tiny.promote.lock").exists()
    assert root_lock.exists() == existed, "nothing is written at the file system root"


# A real race between processes --------------------------------------------------------------------------------
def _race_child(tracking_uri: str, home: str, version: int, barrier: Any, results: Any) -> None:
    """One contender, in its own process: promote ``version`` over champion v1 at the same moment as the others."""
    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    os.environ["MLOPS_HOME"] = home
    from mlops import registry
    from mlops.errors import PromotionConflict

    try:
        registry.alias_version(NAME, registry.CHAMPION)  # imports and connections ready before the start line
        barrier.wait(timeout=120)
        registry.promote(NAME, version, 1, audit={"by": f"racer-{version}", "reason": "race"})
        results.put((version, "promoted", ""))
    except PromotionConflict as exc:
        results.put((version, "conflict", str(exc)))
    except BaseException as exc:  # report anything else to the parent rather than dying silently
        results.put((version, "error", repr(exc)))


def _race(model_uri: str) -> None:
    versions = _register(model_uri, RACERS + 1)
    registry.promote(NAME, 1, None, audit={"reason": "first champion"})
    contenders = versions[1:]

    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(RACERS), context.Queue()
    uri, home = os.environ["MLFLOW_TRACKING_URI"], os.environ["MLOPS_HOME"]
    processes = [
        context.Process(target=_race_child, args=(uri, home, v, barrier, results), daemon=True)
        for v in contenders
    ]
    for process in processes:
        process.start()
    outcomes = []
    try:
        for _ in processes:
            outcomes.append(results.get(timeout=240))
    except queue.Empty:
        pytest.fail(f"only {len(outcomes)} of {RACERS} racers answered: {outcomes}")
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()

    assert not [o for o in outcomes if o[1] == "error"], outcomes
    winners = [v for v, status, _ in outcomes if status == "promoted"]
    assert len(winners) == 1, outcomes
    [winner] = winners
    assert sorted(v for v, status, _ in outcomes if status == "conflict") == sorted(
        set(contenders) - {winner}
    )
    assert all("the champion is now" in message for _, status, message in outcomes if status == "conflict")

    assert registry.alias_version(NAME, registry.CHAMPION) == winner
    assert _events(winner) == ["promoted"]
    assert [v for v in contenders if "promoted" in _events(v)] == [winner]
    assert _events(1) == ["promoted", "retired"]
    assert registry.audit_trail(NAME, 1)[1]["replaced_by"] == winner


@pytest.mark.unit
def test_promotion_race_on_sqlite_has_exactly_one_winner(store_home: Path, model_uri: str) -> None:
    _race(model_uri)


@pytest.fixture
def postgres_store(mlops_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh database on the local PostgreSQL server (trust auth) as the MLflow store; dropped afterwards."""
    import sqlalchemy

    admin = sqlalchemy.create_engine(
        "postgresql://postgres@127.0.0.1:5432/postgres",
        isolation_level="AUTOCOMMIT",
        poolclass=sqlalchemy.pool.NullPool,
    )
    database = f"mlops_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'CREATE DATABASE "{database}"'))
    except sqlalchemy.exc.OperationalError as exc:
        # Never skipped silently: .ci/run starts PostgreSQL; on a laptop without it, say how to get it.
        pytest.fail(f"PostgreSQL is not reachable on 127.0.0.1:5432 (start it, trust auth): {exc}")
    uri = f"postgresql://postgres@127.0.0.1:5432/{database}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    try:
        yield uri
    finally:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.service
def test_promotion_race_on_postgres_has_exactly_one_winner(postgres_store: str, model_uri: str) -> None:
    _race(model_uri)
