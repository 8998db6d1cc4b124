"""The production stack, described once: services, ports, databases, buckets and what each process gets.

Two renderings share this description:

- ``docker-compose.yaml`` is generated from it (``mlops stack compose > docker-compose.yaml``; a test checks the
  committed file equals the output). Services reach each other by their compose service names.
- ``mlops stack up`` runs the same processes on 127.0.0.1 (:mod:`mlops.tooling.stack_native`).

Only host names (and the bind address) differ between the two. Credentials never live here: they come from the
environment or an env file (``.env``, see ``.env.example``). In compose they stay ``${VARIABLE}`` references
that compose fills from ``.env`` and refuses to start without.

Example:
    >>> settings = StackSettings.from_env({"POSTGRES_PASSWORD": "s3cret"})
    >>> service_env(settings, "native", "mlflow")["MLFLOW_S3_ENDPOINT_URL"]
    'http://127.0.0.1:9000'
    >>> service_env(settings, "compose", "mlflow")["MLFLOW_S3_ENDPOINT_URL"]
    'http://minio:9000'
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from pydantic import Field
from pydantic.config import JsonDict
from pydantic_settings import SettingsConfigDict

from mlops.config.settings import EnvironmentSettings

Target = Literal["compose", "native"]

AIRFLOW_VERSION = "3.3.2"
PYTHON_VERSION = "3.11"
AIRFLOW_IMAGE = f"apache/airflow:{AIRFLOW_VERSION}-python{PYTHON_VERSION}"
# Pinned third-party images of the compose file (the native stack runs the same programs from PATH or .venv).
POSTGRES_IMAGE = "postgres:16-alpine"
REDIS_IMAGE = "redis:7.4-alpine"
MINIO_IMAGE = "minio/minio:RELEASE.2025-04-22T22-12-26Z"
MC_IMAGE = "minio/mc:RELEASE.2025-04-16T18-13-26Z"
MAILPIT_IMAGE = "axllent/mailpit:v1.27"
# Inside the image (compose): where our DAGs, pipeline configs and scratch state live.
IMAGE_AIRFLOW_HOME = "/opt/airflow"
# Marks a setting that holds a secret (its field's JSON schema says so too).
_SECRET: JsonDict = {"secret": True}


def _secret_field(alias: str, description: str) -> Any:
    """A credential: empty by default, read from ``alias``, marked secret in the field's schema."""
    return Field("", validation_alias=alias, description=description, json_schema_extra=_SECRET)


class StackSettings(EnvironmentSettings):
    """Every setting of the stack, with the environment variable that sets it (see ``.env.example``).

    ``MLOPS_STACK_<NAME>`` unless the variable has a standard name (credentials, ``AWS_DEFAULT_REGION``); an
    empty value counts as unset. ``StackSettings()`` reads the process's environment, :meth:`from_env` a given
    mapping and an env file, :meth:`defaults` nothing (the committed compose file is rendered from those).

    Ports are the ports the services listen on, in a container and natively alike; compose publishes the
    documented ones on 127.0.0.1 under the same numbers.
    """

    model_config = SettingsConfigDict(
        env_prefix="MLOPS_STACK_", env_ignore_empty=True, frozen=True, extra="ignore"
    )

    # Credentials: from the environment or the env file only. Compose refuses to start without them.
    postgres_user: str = Field("", validation_alias="POSTGRES_USER", description="Postgres user")
    postgres_password: str = _secret_field("POSTGRES_PASSWORD", "Postgres password")
    airflow_admin_user: str = Field(
        "admin", validation_alias="AIRFLOW_ADMIN_USER", description="the Airflow UI/API user (role admin)"
    )
    airflow_admin_password: str = _secret_field("AIRFLOW_ADMIN_PASSWORD", "its password")
    aws_access_key_id: str = Field(
        "", validation_alias="AWS_ACCESS_KEY_ID", description="S3 (MinIO root user in compose)"
    )
    aws_secret_access_key: str = _secret_field("AWS_SECRET_ACCESS_KEY", "S3 secret")
    fernet_key: str = _secret_field("AIRFLOW_FERNET_KEY", "encrypts connections in the DB")
    jwt_secret: str = _secret_field("AIRFLOW_JWT_SECRET", "signs API and task tokens")
    api_secret_key: str = _secret_field("AIRFLOW_API_SECRET_KEY", "signs UI sessions")
    slack_connection: str = _secret_field(
        "AIRFLOW_CONN_SLACK_MLOPS", "optional Slack webhook connection (JSON)"
    )
    serving_admin_token: str = _secret_field("MLOPS_SERVING_ADMIN_TOKEN", "model server: /admin/*")
    serving_feedback_token: str = _secret_field("MLOPS_SERVING_FEEDBACK_TOKEN", "model server: /feedback")
    # Ports.
    postgres_port: int = 5432
    redis_port: int = 6379
    s3_port: int = 9000
    mlflow_port: int = 5000
    airflow_port: int = 8080
    model_port: int = 8000
    smtp_port: int = 1025
    mail_ui_port: int = 8025
    worker_log_port: int = 8793
    # Names.
    airflow_db: str = "airflow"
    mlflow_db: str = "mlflow"
    data_bucket: str = "mlops-data"
    artifact_bucket: str = "mlflow-artifacts"
    redis_db: int = 0
    celery_queue: str = "default"
    # Behaviour.
    serve_pipeline: str = "breast_cancer"
    worker_concurrency: int = 2
    task_heartbeat_timeout: int = 300
    alert_from: str = "mlops@example.com"
    region: str = Field("us-east-1", validation_alias="AWS_DEFAULT_REGION")

    @classmethod
    def variables(cls) -> dict[str, str]:
        """The environment variable of each setting, by field name."""
        prefix = cls.model_config["env_prefix"]
        return {
            name: info.validation_alias
            if isinstance(info.validation_alias, str)
            else f"{prefix}{name.upper()}"
            for name, info in cls.model_fields.items()
        }

    @classmethod
    def secret_variables(cls) -> list[str]:
        """The variables that hold secrets (compose only ever references them)."""
        variables = cls.variables()
        return [
            variables[name]
            for name, info in cls.model_fields.items()
            if isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get("secret")
        ]

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, env_file: str | Path | None = None
    ) -> StackSettings:
        """Settings from ``env_file`` (KEY=VALUE lines) overridden by ``environ`` (default ``os.environ``)."""
        values: dict[str, str] = dict(read_env_file(env_file)) if env_file else {}
        values.update(os.environ if environ is None else environ)
        # Every field is passed (under its alias if it has one), so nothing else is read: not the process's
        # environment when ``environ`` is given.
        variables = cls.variables()
        fields: dict[str, Any] = {}
        for name, info in cls.model_fields.items():
            value = values.get(variables[name], "")
            fields[variables[name] if info.validation_alias else name] = (
                value if value != "" else info.default
            )
        return cls(**fields)

    @classmethod
    def defaults(cls) -> StackSettings:
        """The settings without any variable (what the committed docker-compose.yaml is rendered from)."""
        return cls.from_env({})

    def with_values(self, **changes: Any) -> StackSettings:
        return self.model_copy(update=changes)

    def missing_secrets(self) -> list[str]:
        """Environment variables of required credentials that have no value."""
        optional = {"AIRFLOW_CONN_SLACK_MLOPS"}
        variables = self.variables()
        required = [*self.secret_variables(), variables["postgres_user"], variables["aws_access_key_id"]]
        return [
            env
            for name, env in variables.items()
            if env in required and env not in optional and not getattr(self, name)
        ]

    def to_env(self) -> dict[str, str]:
        """Every setting as its environment variable (what ``from_env`` reads back)."""
        return {env: str(getattr(self, name)) for name, env in self.variables().items()}


def read_env_file(path: str | Path) -> dict[str, str]:
    """KEY=VALUE lines of a compose-style env file (``#`` comments, optional quotes, ``export``); {} if it is
    missing. Parsed by python-dotenv without interpolation: a ``$`` in a value is kept as it is."""
    from dotenv import dotenv_values

    file = Path(path)
    if not file.exists():
        return {}
    # A line without "=" has no value (None): skipped, like a comment.
    return {key: value for key, value in dotenv_values(file, interpolate=False).items() if value is not None}


@dataclass(frozen=True)
class Service:
    """One service of the stack (a compose service; a process group natively)."""

    name: str
    description: str
    port: int | None = None  # the port it listens on
    published: bool = False  # reachable from the host (compose publishes it on 127.0.0.1)
    airflow: bool = False  # an Airflow component (our image, the Airflow environment)


def services(settings: StackSettings) -> list[Service]:
    """The stack's long-running services, in start order."""
    s = settings
    return [
        Service("postgres", "metadata databases of Airflow and MLflow", s.postgres_port),
        Service("redis", "Celery broker", s.redis_port),
        Service("minio", "S3 API: data store, MLflow artifacts (natively `s3 (moto)`)", s.s3_port, True),
        Service("mailpit", "SMTP catcher for alerts with a web UI (natively `smtp (aiosmtpd)`)", s.smtp_port),
        Service("mlflow", "MLflow tracking server and registry", s.mlflow_port, True),
        Service(
            "airflow-apiserver", "Airflow UI, REST API and task execution API", s.airflow_port, True, True
        ),
        Service("airflow-scheduler", "Airflow scheduler (CeleryExecutor)", airflow=True),
        Service("airflow-dag-processor", "parses dags/", airflow=True),
        Service("airflow-triggerer", "deferred tasks", airflow=True),
        Service("airflow-worker", "Celery worker (scale it)", s.worker_log_port, airflow=True),
        Service("model-server", f"`mlops serve {s.serve_pipeline}`", s.model_port, True),
    ]


def published_ports(settings: StackSettings) -> dict[str, list[int]]:
    """Ports the host can reach, per service (compose publishes exactly these, on 127.0.0.1)."""
    ports = {svc.name: [svc.port] for svc in services(settings) if svc.published and svc.port}
    ports["mailpit"] = [settings.mail_ui_port]  # the web UI; SMTP stays inside the network
    return ports


# Values -------------------------------------------------------------------------------------------------------
def _host(target: Target, service: str) -> str:
    return service if target == "compose" else "127.0.0.1"


def _secret(settings: StackSettings, target: Target, name: str, *, required: bool = True) -> str:
    """A credential: a ``${VAR}`` reference for compose (never the value), the value natively."""
    env = settings.variables()[name]
    if target == "compose":
        return f"${{{env}:?set it in .env}}" if required else f"${{{env}:-}}"
    return str(getattr(settings, name))


def postgres_uri(settings: StackSettings, target: Target, database: str, driver: str = "psycopg") -> str:
    user = _secret(settings, target, "postgres_user")
    password = _secret(settings, target, "postgres_password")
    if target == "native":
        user, password = quote(user, safe=""), quote(password, safe="")
    auth = f"{user}:{password}" if password else user
    host = _host(target, "postgres")
    return f"postgresql+{driver}://{auth}@{host}:{settings.postgres_port}/{database}"


def s3_endpoint(settings: StackSettings, target: Target) -> str:
    return f"http://{_host(target, 'minio')}:{settings.s3_port}"


def mlflow_uri(settings: StackSettings, target: Target) -> str:
    return f"http://{_host(target, 'mlflow')}:{settings.mlflow_port}"


def airflow_api_url(settings: StackSettings, target: Target) -> str:
    return f"http://{_host(target, 'airflow-apiserver')}:{settings.airflow_port}"


def smtp_connection(settings: StackSettings, target: Target) -> str:
    sender = quote(settings.alert_from, safe="")
    return (
        f"smtp://{_host(target, 'mailpit')}:{settings.smtp_port}"
        f"?disable_ssl=true&disable_tls=true&from_email={sender}&timeout=10&retry_limit=1"
    )


def store_uri(settings: StackSettings) -> str:
    return f"s3://{settings.data_bucket}/store"


def _s3_env(settings: StackSettings, target: Target) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": _secret(settings, target, "aws_access_key_id"),
        "AWS_SECRET_ACCESS_KEY": _secret(settings, target, "aws_secret_access_key"),
        "AWS_DEFAULT_REGION": settings.region,
        "AWS_ENDPOINT_URL": s3_endpoint(settings, target),
        "MLFLOW_S3_ENDPOINT_URL": s3_endpoint(settings, target),
    }


def _mlops_env(settings: StackSettings, target: Target, home: str, pipelines_dir: str) -> dict[str, str]:
    """What our code needs in every process that runs it (Airflow components, the model server)."""
    return {
        "MLOPS_HOME": home,
        "MLOPS_PIPELINES_DIR": pipelines_dir,
        "MLOPS_STORE_URI": store_uri(settings),
        "MLOPS_ARTIFACT_ROOT": f"s3://{settings.artifact_bucket}/experiments",
        "MLFLOW_TRACKING_URI": mlflow_uri(settings, target),
        # Promotions from any worker serialise on an advisory lock in the MLflow database.
        "MLOPS_LOCK_URI": postgres_uri(settings, target, settings.mlflow_db),
        # Links in alerts point at the published addresses.
        "MLOPS_AIRFLOW_UI_URL": f"http://127.0.0.1:{settings.airflow_port}",
        "MLOPS_MLFLOW_UI_URL": f"http://127.0.0.1:{settings.mlflow_port}",
        "GIT_PYTHON_REFRESH": "quiet",
        **_s3_env(settings, target),
    }


def airflow_env(
    settings: StackSettings, target: Target, airflow_home: str, dags_folder: str
) -> dict[str, str]:
    """The Airflow configuration shared by every Airflow component (and the workers)."""
    s = settings
    env = {
        "AIRFLOW_HOME": airflow_home,
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__DAGS_FOLDER": dags_folder,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW__CORE__FERNET_KEY": _secret(s, target, "fernet_key"),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{airflow_api_url(s, target)}/execution/",
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{_secret(s, target, 'airflow_admin_user')}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": f"{airflow_home}/simple_auth_manager_passwords.json",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres_uri(s, target, s.airflow_db),
        # psycopg 3 serves the async engine too (Airflow would otherwise want asyncpg).
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": postgres_uri(s, target, s.airflow_db, "psycopg_async"),
        "AIRFLOW__CELERY__BROKER_URL": f"redis://{_host(target, 'redis')}:{s.redis_port}/{s.redis_db}",
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + postgres_uri(s, target, s.airflow_db),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(s.worker_concurrency),
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": s.celery_queue,
        "AIRFLOW__API__HOST": "0.0.0.0" if target == "compose" else "127.0.0.1",
        "AIRFLOW__API__PORT": str(s.airflow_port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{s.airflow_port}",
        "AIRFLOW__API__SECRET_KEY": _secret(s, target, "api_secret_key"),
        "AIRFLOW__API_AUTH__JWT_SECRET": _secret(s, target, "jwt_secret"),
        "AIRFLOW__API_AUTH__JWT_ISSUER": "mlops-stack",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(s.task_heartbeat_timeout),
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(s.worker_log_port),
        # Alerts: the pipelines' `smtp_mlops` route goes to the mail catcher; Slack only when configured.
        "AIRFLOW_CONN_SMTP_MLOPS": smtp_connection(s, target),
        "AIRFLOW_CONN_SLACK_MLOPS": _secret(s, target, "slack_connection", required=False),
    }
    if target == "native" and not s.slack_connection:
        del env["AIRFLOW_CONN_SLACK_MLOPS"]
    return env


def service_env(
    settings: StackSettings,
    target: Target,
    service: str,
    *,
    home: str | None = None,
    repo: str | None = None,
) -> dict[str, str]:
    """The environment of one service's process.

    ``home`` is the native stack's home folder and ``repo`` the checkout (DAGs and pipeline configs);
    compose uses the image's paths.
    """
    if target == "compose":
        home_dir, airflow_home = f"{IMAGE_AIRFLOW_HOME}/mlops", IMAGE_AIRFLOW_HOME
        dags, pipelines = f"{IMAGE_AIRFLOW_HOME}/dags", f"{IMAGE_AIRFLOW_HOME}/include/pipelines"
    else:
        home_dir = home or "."
        airflow_home = f"{home_dir}/airflow"
        root = repo or "."
        dags, pipelines = f"{root}/dags", os.environ.get("MLOPS_PIPELINES_DIR") or f"{root}/include/pipelines"
    if service == "mlflow":
        return {**_s3_env(settings, target), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    if service == "model-server":
        return {
            **_mlops_env(settings, target, home_dir, pipelines),
            "MLOPS_SERVING_ADMIN_TOKEN": _secret(settings, target, "serving_admin_token"),
            "MLOPS_SERVING_FEEDBACK_TOKEN": _secret(settings, target, "serving_feedback_token"),
            # Only these Host headers (the compose service name too, alike natively): a DNS-rebinding page's
            # Host is refused (400).
            "MLOPS_SERVING_ALLOWED_HOSTS": "127.0.0.1,localhost,model-server",
        }
    if service.startswith("airflow"):
        return {
            **airflow_env(settings, target, airflow_home, dags),
            **_mlops_env(settings, target, home_dir, pipelines),
            # The deploy step's reload and the canary trigger call the model server's /admin.
            "MLOPS_SERVING_ADMIN_TOKEN": _secret(settings, target, "serving_admin_token"),
        }
    return {}


# Commands -----------------------------------------------------------------------------------------------------
def mlflow_command(settings: StackSettings, target: Target) -> list[str]:
    bind = "0.0.0.0" if target == "compose" else "127.0.0.1"
    port = settings.mlflow_port
    allowed = [f"{h}:{port}" for h in ("127.0.0.1", "localhost", _host(target, "mlflow"))]
    return [
        "mlflow", "server",
        "--backend-store-uri", postgres_uri(settings, target, settings.mlflow_db),
        "--artifacts-destination", f"s3://{settings.artifact_bucket}",
        "--host", bind, "--port", str(port), "--workers", "1",
        "--allowed-hosts", ",".join(dict.fromkeys(allowed)),
    ]  # fmt: skip


def airflow_command(settings: StackSettings, service: str, *, worker_name: str = "worker") -> list[str]:
    if service == "airflow-worker":
        return [
            "airflow", "celery", "worker", "--queues", settings.celery_queue,
            "--celery-hostname", f"{worker_name}@%h", "--concurrency", str(settings.worker_concurrency),
        ]  # fmt: skip
    return {
        "airflow-apiserver": ["airflow", "api-server"],
        "airflow-scheduler": ["airflow", "scheduler"],
        "airflow-dag-processor": ["airflow", "dag-processor"],
        "airflow-triggerer": ["airflow", "triggerer"],
    }[service]


def model_server_command(settings: StackSettings, target: Target) -> list[str]:
    bind = "0.0.0.0" if target == "compose" else "127.0.0.1"
    return ["mlops", "serve", settings.serve_pipeline, "--host", bind, "--port", str(settings.model_port)]


# docker-compose.yaml ------------------------------------------------------------------------------------------
COMPOSE_HEADER = """\
# GENERATED by `mlops stack compose > docker-compose.yaml` from plugins/mlops/stack.py: edit that, not this.
# tests/unit/test_stack_compose.py checks this file equals the generated one and validates it against the
# Compose Specification. Credentials come from .env (cp .env.example .env, then fill it in): compose refuses to
# start while one is missing. Published ports listen on 127.0.0.1 only (see docs/deploy.md).
#
#   docker compose up -d --build                       # the whole stack
#   docker compose up -d --scale airflow-worker=3      # more Celery workers
"""

# The official image runs unknown commands as `airflow <command>`; our non-Airflow programs skip that.
_PLAIN_ENTRYPOINT = ["/usr/bin/dumb-init", "--"]


def _healthcheck(test: list[str], interval: str = "10s", retries: int = 10, start: str = "20s") -> dict:
    return {"test": test, "interval": interval, "timeout": "10s", "retries": retries, "start_period": start}


def _curl(url: str) -> list[str]:
    return ["CMD", "curl", "--fail", "--silent", "--show-error", "--output", "/dev/null", url]


def _ports(port: int, container: int | None = None) -> list[str]:
    return [f"127.0.0.1:{port}:{container or port}"]


def compose_file(settings: StackSettings | None = None) -> dict[str, Any]:
    """The compose project as a dict (rendered by :func:`render_compose`)."""
    s = settings or StackSettings.defaults()
    t: Target = "compose"
    image = {"image": "mlops-airflow-kit:latest", "build": {"context": ".", "dockerfile": "Dockerfile"}}
    healthy = {"condition": "service_healthy"}
    done = {"condition": "service_completed_successfully"}
    airflow_volumes = ["airflow-logs:/opt/airflow/logs"]

    def served_by_us(name: str, command: list[str], port: int, depends_on: dict[str, Any]) -> dict[str, Any]:
        """A service of ours with an HTTP ``/health`` (MLflow, the model server)."""
        return {
            **image,
            "entrypoint": _PLAIN_ENTRYPOINT,
            "command": command,
            "environment": service_env(s, t, name),
            "ports": _ports(port),
            "healthcheck": _healthcheck(_curl(f"http://localhost:{port}/health")),
            "depends_on": depends_on,
            "restart": "unless-stopped",
        }

    def airflow_service(name: str, command: list[str], healthcheck: dict, **extra: Any) -> dict[str, Any]:
        return {
            **image,
            "command": command,
            "environment": service_env(s, t, name),
            "volumes": list(airflow_volumes),
            "healthcheck": healthcheck,
            "restart": "unless-stopped",
            "depends_on": {
                "airflow-init": done,
                "postgres": healthy,
                "redis": healthy,
                "mlflow": healthy,
                **extra.pop("depends_on", {}),
            },
            **extra,
        }

    def job_check(job: str) -> dict:
        return _healthcheck(["CMD-SHELL", f'airflow jobs check --job-type {job} --hostname "$${{HOSTNAME}}"'])

    apiserver_env = {
        **service_env(s, t, "airflow-apiserver"),
        "AIRFLOW_ADMIN_USER": _secret(s, t, "airflow_admin_user"),
        "AIRFLOW_ADMIN_PASSWORD": _secret(s, t, "airflow_admin_password"),
    }
    buckets = " ".join(f"local/{b}" for b in (s.data_bucket, s.artifact_bucket))
    services_: dict[str, Any] = {
        "postgres": {
            "image": POSTGRES_IMAGE,
            "environment": {
                "POSTGRES_USER": _secret(s, t, "postgres_user"),
                "POSTGRES_PASSWORD": _secret(s, t, "postgres_password"),
                "POSTGRES_DB": s.airflow_db,
            },
            "configs": [{"source": "create-databases", "target": "/docker-entrypoint-initdb.d/mlflow.sql"}],
            "volumes": ["postgres-data:/var/lib/postgresql/data"],
            "healthcheck": _healthcheck(
                ["CMD-SHELL", f'pg_isready -U "$${{POSTGRES_USER}}" -d {s.airflow_db}']
            ),
            "restart": "unless-stopped",
        },
        "redis": {
            "image": REDIS_IMAGE,
            "volumes": ["redis-data:/data"],
            "healthcheck": _healthcheck(["CMD", "redis-cli", "ping"]),
            "restart": "unless-stopped",
        },
        "minio": {
            "image": MINIO_IMAGE,
            "command": ["server", "/data", "--address", f":{s.s3_port}"],
            "environment": {
                "MINIO_ROOT_USER": _secret(s, t, "aws_access_key_id"),
                "MINIO_ROOT_PASSWORD": _secret(s, t, "aws_secret_access_key"),
            },
            "ports": _ports(s.s3_port),
            "volumes": ["minio-data:/data"],
            "healthcheck": _healthcheck(["CMD", "mc", "ready", "local"]),
            "restart": "unless-stopped",
        },
        "minio-init": {
            "image": MC_IMAGE,
            "entrypoint": ["/bin/sh", "-c"],
            "command": [
                f'mc alias set local http://minio:{s.s3_port} "$${{AWS_ACCESS_KEY_ID}}" "$${{AWS_SECRET_ACCESS_KEY}}"'
                f" && mc mb --ignore-existing {buckets}"
            ],
            "environment": {
                "AWS_ACCESS_KEY_ID": _secret(s, t, "aws_access_key_id"),
                "AWS_SECRET_ACCESS_KEY": _secret(s, t, "aws_secret_access_key"),
            },
            "depends_on": {"minio": healthy},
            "restart": "no",
        },
        "mailpit": {
            "image": MAILPIT_IMAGE,
            "environment": {
                "MP_SMTP_BIND_ADDR": f"0.0.0.0:{s.smtp_port}",
                "MP_UI_BIND_ADDR": f"0.0.0.0:{s.mail_ui_port}",
            },
            "ports": _ports(s.mail_ui_port),
            "healthcheck": _healthcheck(["CMD", "/mailpit", "readyz"]),
            "restart": "unless-stopped",
        },
        "mlflow": served_by_us(
            "mlflow", mlflow_command(s, t), s.mlflow_port, {"postgres": healthy, "minio-init": done}
        ),
        "airflow-init": {
            **image,
            "command": ["bash", "-c", "airflow db migrate"],
            "environment": service_env(s, t, "airflow-init"),
            "volumes": list(airflow_volumes),
            "depends_on": {"postgres": healthy},
            "restart": "no",
        },
        "airflow-apiserver": airflow_service(
            "airflow-apiserver",
            ["bash", "-c", "mlops stack auth-file && exec airflow api-server"],
            _healthcheck(_curl(f"http://localhost:{s.airflow_port}/api/v2/monitor/health")),
            environment=apiserver_env,
            ports=_ports(s.airflow_port),
        ),
        "airflow-scheduler": airflow_service(
            "airflow-scheduler",
            airflow_command(s, "airflow-scheduler"),
            _healthcheck(_curl("http://localhost:8974/health")),
        ),
        "airflow-dag-processor": airflow_service(
            "airflow-dag-processor", airflow_command(s, "airflow-dag-processor"), job_check("DagProcessorJob")
        ),
        "airflow-triggerer": airflow_service(
            "airflow-triggerer", airflow_command(s, "airflow-triggerer"), job_check("TriggererJob")
        ),
        "airflow-worker": airflow_service(
            "airflow-worker",
            airflow_command(s, "airflow-worker"),
            _healthcheck(
                [
                    "CMD-SHELL",
                    "celery --app airflow.providers.celery.executors.celery_executor.app inspect ping"
                    ' -d "worker@$${HOSTNAME}"',
                ]
            ),
            depends_on={"airflow-apiserver": healthy},
        ),
        "model-server": served_by_us(
            "model-server", model_server_command(s, t), s.model_port, {"mlflow": healthy, "minio-init": done}
        ),
    }
    # The inference log's crash-safe journal outlives the container (a restart replays it).
    services_["model-server"]["volumes"] = ["model-server-journal:/opt/airflow/mlops/journal"]
    # The worker's environment: the same as every Airflow component's, plus a graceful warm shutdown.
    services_["airflow-worker"]["environment"]["DUMB_INIT_SETSID"] = "0"
    return {
        "name": "mlops",
        "services": services_,
        "volumes": {
            name: {}
            for name in ("postgres-data", "redis-data", "minio-data", "airflow-logs", "model-server-journal")
        },
        "configs": {"create-databases": {"content": f"CREATE DATABASE {s.mlflow_db};\n"}},
    }


def render_compose(settings: StackSettings | None = None) -> str:
    """docker-compose.yaml as text (no YAML anchors: every service reads on its own)."""
    import yaml

    class _Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    body = yaml.dump(compose_file(settings), Dumper=_Dumper, sort_keys=False, width=200)
    return COMPOSE_HEADER + "\n" + body


def write_auth_file(environ: Mapping[str, str] | None = None) -> Path:
    """Write the Airflow user's password where SimpleAuthManager reads it (the API server's start).

    Airflow's SimpleAuthManager generates and prints a password for a user missing from its passwords file;
    writing the file first makes the password the one from ``.env``.
    """
    import json

    env = os.environ if environ is None else environ
    path = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    user, password = env.get("AIRFLOW_ADMIN_USER") or "admin", env.get("AIRFLOW_ADMIN_PASSWORD") or ""
    if not password:
        from mlops.errors import StackError

        raise StackError("AIRFLOW_ADMIN_PASSWORD is not set: put it in .env (see .env.example)")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({user: password}))
    path.chmod(0o600)
    return path


def s3_client(settings: StackSettings, endpoint: str) -> Any:
    """A boto3 S3 client of the stack's S3 API at ``endpoint``, with the stack's keys."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=settings.aws_access_key_id,
        aws_secret_access_key=settings.aws_secret_access_key,
        region_name=settings.region,
    )
