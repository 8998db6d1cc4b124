"""Airflow's metadata database of a home: migrated once, when it is new or older than the installed Airflow.

``mlops env``, ``mlops demo`` and ``mlops ui`` call :func:`ensure_airflow_db` before anything runs Airflow on
a home, so a fresh ``MLOPS_HOME`` works with ``airflow dags test`` and ``dag.test()`` without a manual
``airflow db migrate``. The check is cheap: a stamp file in ``AIRFLOW_HOME`` records the Airflow version, the
database URL and the schema revision reached; while all three still hold (the revision read from the SQLite
file itself), nothing runs. Otherwise ``airflow db migrate`` (idempotent, about 5 s on SQLite) runs in a
subprocess with the home's environment, under a file lock so that two commands do not migrate at once.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from importlib.metadata import version
from pathlib import Path

from mlops.errors import MlopsError

__all__ = ["STAMP", "ensure_airflow_db"]

#: The stamp file in ``AIRFLOW_HOME``: what the last migration by this kit reached.
STAMP = ".mlops-db-migrated.json"


def _database_url(env: Mapping[str, str], airflow_home: Path) -> str:
    """The metadata database URL Airflow will use with ``env`` (its default: SQLite in ``AIRFLOW_HOME``)."""
    for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__SQL_ALCHEMY_CONN"):
        if env.get(key):
            return env[key]
    return f"sqlite:///{airflow_home / 'airflow.db'}"


def _sqlite_path(url: str) -> Path | None:
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def _revision(url: str) -> str | None:
    """The schema revision of a SQLite metadata database (None when missing or not initialised); for other
    databases, "unchecked": the stamp is trusted."""
    path = _sqlite_path(url)
    if path is None:
        return "unchecked"
    if not path.is_file():
        return None
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return None
    return str(row[0]) if row else None


def _wanted(url: str) -> dict[str, str | None]:
    return {"airflow": version("apache-airflow"), "database": url}


def _up_to_date(stamp: Path, url: str) -> bool:
    try:
        recorded = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return False
    current = _revision(url)
    return (
        isinstance(recorded, dict)
        and current is not None
        and {k: recorded.get(k) for k in ("airflow", "database")} == _wanted(url)
        and recorded.get("revision") == current
    )


def ensure_airflow_db(env: Mapping[str, str], *, say: Callable[[str], None] | None = None) -> bool:
    """Migrate the metadata database that ``env`` points Airflow at, if it is missing or behind.

    Args:
        env: The home's Airflow environment (:func:`mlops.config.settings.airflow_env`); it is laid over the
            process environment for the migration.
        say: Where to report a migration (one line); nothing is said when nothing had to be done.

    Returns:
        True when ``airflow db migrate`` ran, False when the database was up to date.

    Raises:
        MlopsError: the migration failed; the message holds the end of Airflow's output.
    """
    from filelock import FileLock

    full_env = {**os.environ, **env}
    airflow_home = Path(full_env.get("AIRFLOW_HOME") or Path.home() / "airflow").expanduser()
    airflow_home.mkdir(parents=True, exist_ok=True)
    url = _database_url(full_env, airflow_home)
    stamp = airflow_home / STAMP
    if _up_to_date(stamp, url):
        return False
    with FileLock(str(airflow_home / ".mlops-db-migrate.lock"), timeout=600):
        if _up_to_date(stamp, url):  # another command migrated it while this one waited
            return False
        started = time.monotonic()
        airflow = Path(sys.executable).parent / "airflow"
        result = subprocess.run(
            [str(airflow), "db", "migrate"], capture_output=True, text=True, env=full_env, check=False
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()[-2000:]
            raise MlopsError(
                f"airflow db migrate failed for the metadata database {url} (AIRFLOW_HOME {airflow_home}), "
                f"exit code {result.returncode}:\n{output}\nFix the cause, then run the command again."
            )
        stamp.write_text(json.dumps({**_wanted(url), "revision": _revision(url)}, indent=2))
    if say is not None:
        say(f"Airflow metadata database ready in {airflow_home} ({time.monotonic() - started:.0f} s)")
    return True
