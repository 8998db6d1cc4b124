"""Where things live, read from the environment each time it is asked.

Standard names first (``MLFLOW_TRACKING_URI``, ``AIRFLOW_HOME``), ``MLOPS_`` otherwise. The embedded default
keeps everything under ``MLOPS_HOME``: an MLflow SQLite store, its artifacts, the data store (batches,
quarantine, reports) and the Airflow home.

:class:`Settings` is the schema (pydantic-settings: each field's variable, default and description). The
functions below build a fresh one on every call, so a variable changed at run time (``monkeypatch.setenv``, a
simulation pointing this process at another home) counts at once. An empty variable counts as unset.

Example (with ``MLFLOW_TRACKING_URI`` unset):
    >>> Settings(home="/srv/mlops").tracking_uri  # doctest: +SKIP
    'sqlite:////srv/mlops/mlflow.db'
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

#: The ``mlops`` package (``plugins/mlops`` in a checkout).
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def repo_root() -> Path | None:
    """The checkout this package is installed from (editable install), if any."""
    candidate = PACKAGE_DIR.parent.parent
    return candidate if (candidate / "pyproject.toml").exists() and (candidate / "dags").is_dir() else None


def _default_home() -> Path:
    root = repo_root()
    return (root / ".mlops") if root else Path.home() / ".mlops"


def _default_pipelines_dir(data: dict[str, Any]) -> Path:
    root = repo_root()
    return (root / "include" / "pipelines") if root else data["home"] / "pipelines"


#: Where an estimator class may come from without ``MLOPS_ESTIMATOR_MODULES``: scikit-learn, XGBoost, LightGBM,
#: and the kit's own deliberately faulty models (``mlops_datagen.faulty``, for the demo and the tests).
ESTIMATOR_MODULES = ("sklearn", "xgboost", "lightgbm", "mlops_datagen.faulty")


class EnvironmentSettings(BaseSettings):
    """Settings read from the process's environment only: no ``.env`` file, no secrets folder (an env file is
    read explicitly where one is meant, e.g. ``mlops stack``), and half the cost of each read."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings


class Settings(EnvironmentSettings):
    """The process's settings, resolved: every default filled in (those under the home from ``home``)."""

    model_config = SettingsConfigDict(env_prefix="MLOPS_", env_ignore_empty=True, extra="ignore")

    home: Path = Field(
        default_factory=_default_home,
        description="Root of the embedded default's state (`MLOPS_HOME`; default `<checkout>/.mlops`).",
    )
    pipelines_dir: Path = Field(
        default_factory=_default_pipelines_dir,
        description="Folder of pipeline YAML files (`MLOPS_PIPELINES_DIR`; default `<checkout>/include/pipelines`).",
    )
    tracking_uri: str = Field(
        default_factory=lambda data: f"sqlite:///{data['home'] / 'mlflow.db'}",
        validation_alias="MLFLOW_TRACKING_URI",
        description="MLflow tracking URI (`MLFLOW_TRACKING_URI`; default a SQLite store in the home).",
    )
    artifact_root: str = Field(
        default_factory=lambda data: (data["home"] / "mlartifacts").as_uri(),
        description="Where new MLflow experiments keep their artifacts (`MLOPS_ARTIFACT_ROOT`).",
    )
    lock_uri: str = Field(
        default_factory=lambda data: data["tracking_uri"],
        description=(
            "Where promotions take their lock (`MLOPS_LOCK_URI`; default the tracking URI). A Postgres URI "
            "gives an advisory lock that every worker shares; the production stack points it at the MLflow "
            "database, because the tracking URI there is the MLflow server's `http://` address."
        ),
    )
    store_uri: str = Field(
        default_factory=lambda data: (data["home"] / "store").as_uri(),
        description="Root URI of the data store: batches, quarantine, reports (`MLOPS_STORE_URI`; file:// or s3://).",
    )
    mlflow_ui_url: str = Field(
        "http://127.0.0.1:5000",
        description="Base URL of the MLflow UI, used in links in alerts (`MLOPS_MLFLOW_UI_URL`).",
    )
    airflow_ui_url: str = Field(
        "http://127.0.0.1:8080",
        description="Base URL of the Airflow UI, used in links in alerts (`MLOPS_AIRFLOW_UI_URL`).",
    )
    data_roots: str = Field(
        "",
        description="Landing roots every pipeline may also ingest from, comma-separated: local folders or "
        "`s3://bucket/prefix` (`MLOPS_DATA_ROOTS`; relative to the home). Added to each pipeline's own "
        "(`data.landing_roots` and its defaults); the operator's way to open a shared drop folder.",
    )
    estimator_modules: str = Field(
        "",
        description="Module prefixes an estimator may also be imported from, comma-separated "
        "(`MLOPS_ESTIMATOR_MODULES`, e.g. `catboost,acme_models`); added to "
        f"{', '.join(f'`{m}`' for m in ESTIMATOR_MODULES)}.",
    )
    airflow_home: str | None = Field(
        None,
        validation_alias="AIRFLOW_HOME",
        description="The Airflow home (`AIRFLOW_HOME`; the embedded default's is `<home>/airflow`).",
    )

    @field_validator("home", "pipelines_dir")
    @classmethod
    def _absolute(cls, path: Path) -> Path:
        return path.expanduser().resolve()

    @field_validator("store_uri", "mlflow_ui_url", "airflow_ui_url")
    @classmethod
    def _no_trailing_slash(cls, uri: str) -> str:
        return uri.rstrip("/")


#: The model server's admin token: ``/admin/*`` wants it, the deploy step and the canary trigger send it.
SERVING_ADMIN_TOKEN_ENV = "MLOPS_SERVING_ADMIN_TOKEN"
#: The token of ``POST /feedback`` (default: the admin token), for the system that sends true labels.
SERVING_FEEDBACK_TOKEN_ENV = "MLOPS_SERVING_FEEDBACK_TOKEN"
#: Comma-separated Host names the model server answers (``*.example.com`` allowed); unset: any.
SERVING_ALLOWED_HOSTS_ENV = "MLOPS_SERVING_ALLOWED_HOSTS"
#: Without ``MLOPS_SERVING_ADMIN_TOKEN``, the server generates its token into this file of ``MLOPS_HOME``.
SERVING_TOKEN_FILE = "serving.token"


def serving_token_file() -> Path:
    """Where the embedded default keeps the model server's generated token (``<MLOPS_HOME>/serving.token``)."""
    return mlops_home() / SERVING_TOKEN_FILE


def serving_admin_token(*, create: bool = False) -> str | None:
    """The model server's admin bearer token: ``MLOPS_SERVING_ADMIN_TOKEN``, else the one generated into
    :func:`serving_token_file` (with ``create``, generate it there, mode 600, when there is none yet)."""
    token = os.environ.get(SERVING_ADMIN_TOKEN_ENV)
    if token:
        return token
    path = serving_token_file()
    if create and not path.exists():
        import secrets

        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_urlsafe(32) + "\n")
        try:  # a hard link appears whole or not at all: two servers starting at once keep one token
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def serving_feedback_token(*, create: bool = False) -> str | None:
    """The bearer token of ``POST /feedback``: ``MLOPS_SERVING_FEEDBACK_TOKEN``, else the admin token."""
    return os.environ.get(SERVING_FEEDBACK_TOKEN_ENV) or serving_admin_token(create=create)


def serving_allowed_hosts() -> list[str] | None:
    """The Host names the model server answers (``MLOPS_SERVING_ALLOWED_HOSTS``), or None for any."""
    hosts = [h.strip() for h in os.environ.get(SERVING_ALLOWED_HOSTS_ENV, "").split(",") if h.strip()]
    return hosts or None


def _listed(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def data_roots() -> list[str]:
    """The operator's extra landing roots (``MLOPS_DATA_ROOTS``, comma-separated), as given."""
    return _listed(current().data_roots)


def estimator_modules() -> tuple[str, ...]:
    """Module prefixes an estimator may be imported from: the built-in ones and ``MLOPS_ESTIMATOR_MODULES``."""
    return (*ESTIMATOR_MODULES, *(m.strip(".") for m in _listed(current().estimator_modules)))


def estimator_allowed(path: str) -> bool:
    """Whether the import path ``path`` (``package.module.Class``) lies in an allowed module: checked on the
    string, before anything is imported (``sklearn`` allows ``sklearn.svm.SVC``, not ``sklearnx.Evil``)."""
    return any(path.startswith(f"{prefix}.") for prefix in estimator_modules())


def current() -> Settings:
    """The settings as the environment has them now."""
    return Settings()


def mlops_home() -> Path:
    """Root of the embedded default's state (``MLOPS_HOME``; default ``<checkout>/.mlops``)."""
    return current().home


def pipelines_dir() -> Path:
    """Folder of pipeline YAML files (``MLOPS_PIPELINES_DIR``; default ``<checkout>/include/pipelines``)."""
    return current().pipelines_dir


def tracking_uri() -> str:
    """MLflow tracking URI (``MLFLOW_TRACKING_URI``; default a SQLite store in ``MLOPS_HOME``)."""
    return current().tracking_uri


def artifact_root() -> str:
    """Where new MLflow experiments keep their artifacts (``MLOPS_ARTIFACT_ROOT``)."""
    return current().artifact_root


def lock_uri() -> str:
    """Where promotions take their lock (``MLOPS_LOCK_URI``; default the tracking URI).

    A Postgres URI gives an advisory lock that every worker shares; the production stack points it at the
    MLflow database, because the tracking URI there is the MLflow server's ``http://`` address.
    """
    return current().lock_uri


def store_uri() -> str:
    """Root URI of the data store: batches, quarantine, reports (``MLOPS_STORE_URI``; file:// or s3://)."""
    return current().store_uri


def landing_base() -> str:
    """Where a relative data path (``data.source``, a run's ``data_uri``) points: the folder or bucket that holds
    the data store (``<home>`` for the embedded ``<home>/store``; ``s3://mlops-data`` for the stack's
    ``s3://mlops-data/store``), so that ``landing/<pipeline>/...`` is the drop folder beside the store."""
    store = store_uri()
    if store.startswith("s3://"):
        bucket, _, prefix = store[len("s3://") :].partition("/")
        parent = prefix.rstrip("/").rpartition("/")[0]
        return f"s3://{bucket}/{parent}" if parent else f"s3://{bucket}"
    from urllib.parse import unquote, urlparse

    return str(Path(unquote(urlparse(store).path)).parent) if "://" in store else str(Path(store).parent)


def data_location(path: str) -> str:
    """A data path as given (``{ds}`` kept): a URI or an absolute path unchanged, a relative one under
    :func:`landing_base`. What the trigger form shows and what a run resolves."""
    path = path.strip()
    if "://" in path or Path(path).expanduser().is_absolute():
        return path
    base = landing_base()
    return f"{base.rstrip('/')}/{path.lstrip('/')}" if "://" in base else str(Path(base) / path)


def mlflow_ui_url() -> str:
    """Base URL of the MLflow UI, used in links in alerts (``MLOPS_MLFLOW_UI_URL``)."""
    return current().mlflow_ui_url


def airflow_ui_url() -> str:
    """Base URL of the Airflow UI, used in links in alerts (``MLOPS_AIRFLOW_UI_URL``)."""
    return current().airflow_ui_url


def airflow_env(home: Path | None = None) -> dict[str, str]:
    """Environment for an embedded Airflow on this checkout (SQLite, LocalExecutor, our DAGs and plugin).

    ``home`` (default ``MLOPS_HOME``) is the embedded default's state: its SQLite MLflow store and Airflow
    home unless ``MLFLOW_TRACKING_URI`` or ``AIRFLOW_HOME`` say otherwise.
    """
    given = Settings(home=home) if home else current()  # the given home's defaults; the environment's URIs
    root = repo_root()
    env = {
        "MLOPS_HOME": str(given.home),
        "AIRFLOW_HOME": given.airflow_home or str(given.home / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "MLFLOW_TRACKING_URI": given.tracking_uri,
        "GIT_PYTHON_REFRESH": "quiet",
    }
    if root:
        env["AIRFLOW__CORE__DAGS_FOLDER"] = str(root / "dags")
    return env
