"""The production stack without Docker: the services of :mod:`mlops.tooling.stack` as processes on 127.0.0.1.

``up`` reuses what already answers (a Postgres, a Redis, an S3 API on the configured ports) and starts the rest,
each in its own process group with its log in ``<home>/logs`` and its pid in ``<home>/run``; ``down`` stops
exactly what ``up`` started (idempotent); ``status`` probes every service. The settings ``up`` used are kept in
``<home>/stack.env`` (mode 600, with the secrets it generated when none were given), so ``down``, ``status``
and tests read the same ones.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from mlops.config import settings as mlops_settings
from mlops.errors import StackError
from mlops.serving.client import wait_until
from mlops.tooling.stack import (
    StackSettings,
    airflow_command,
    mlflow_command,
    model_server_command,
    postgres_uri,
    read_env_file,
    s3_client,
    service_env,
)

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
SETTINGS_FILE = "stack.env"
AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")
# Prefixes of variables that belong to the stack: a process gets the stack's values, never the caller's.
_OWNED_PREFIXES = ("AIRFLOW", "MLOPS_", "MLFLOW_", "AWS_")


def generate_secrets() -> dict[str, str]:
    """Fresh random credentials for every secret of the stack (what ``mlops stack env-file`` writes)."""
    from cryptography.fernet import Fernet

    return {
        "POSTGRES_PASSWORD": secrets.token_hex(16),
        "AIRFLOW_ADMIN_PASSWORD": secrets.token_urlsafe(18),
        "AWS_SECRET_ACCESS_KEY": secrets.token_hex(20),
        "AIRFLOW_FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW_JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW_API_SECRET_KEY": secrets.token_urlsafe(32),
        "MLOPS_SERVING_ADMIN_TOKEN": secrets.token_urlsafe(32),
        "MLOPS_SERVING_FEEDBACK_TOKEN": secrets.token_urlsafe(32),
    }


def env_file_text(values: dict[str, str] | None = None) -> str:
    """An ``.env`` for the stack: ``.env.example``'s keys with fresh secrets (``mlops stack env-file``)."""
    values = {"POSTGRES_USER": "mlops", "AIRFLOW_ADMIN_USER": "admin", "AWS_ACCESS_KEY_ID": "mlops",
              **generate_secrets(), **(values or {})}  # fmt: skip
    lines = ["# Written by `mlops stack env-file`: keep it secret, never commit it."]
    lines += [f"{key}={value}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    state: str  # "healthy", "unhealthy", "stopped", "external" (answers, not started by us)
    detail: str = ""
    pid: int | None = None
    program: str = ""  # what runs natively where compose runs something else (S3: moto, SMTP: aiosmtpd)

    @property
    def label(self) -> str:
        """The name ``mlops stack status`` shows: ``s3 (moto)``, ``postgres``."""
        return f"{self.name} ({self.program})" if self.program else self.name


# Natively these run in place of compose's MinIO and Mailpit: the status names what really runs.
NATIVE_PROGRAMS = {"s3": "moto", "smtp": "aiosmtpd"}


def is_stack_home(folder: Path) -> bool:
    """Whether ``folder`` holds a native stack's state (``up`` wrote its ``stack.env`` there)."""
    return (folder / SETTINGS_FILE).is_file()


def locate_home(explicit: str | Path | None, mlops_home: Path) -> Path:
    """The native stack's home: ``explicit`` (``--home``) when given, else ``mlops_home`` itself when it is a
    stack home, else ``<mlops_home>/stack``.

    ``mlops stack env`` exports ``MLOPS_HOME=<stack home>`` (what the stack's processes run with), so after
    ``eval "$(mlops stack env)"`` the variable names the stack home itself, not the folder above it: the stack's
    own state file (``stack.env``) tells the two apart.
    """
    if explicit:
        return Path(explicit).expanduser().resolve()
    home = mlops_home.expanduser().resolve()
    return home if is_stack_home(home) else home / "stack"


class NativeStack:
    """The stack in ``home``; build it with :meth:`prepare` (``up``) or :meth:`load` (``down``, ``status``)."""

    def __init__(self, home: Path, settings: StackSettings) -> None:
        self.home = home
        self.settings = settings
        self.repo = mlops_settings.repo_root() or Path.cwd()
        self.bin_dir = Path(sys.executable).parent
        self.run_dir, self.log_dir = home / "run", home / "logs"

    # Settings -------------------------------------------------------------------------------------------------
    @classmethod
    def prepare(cls, home: Path, env_file: str | Path | None = None) -> NativeStack:
        """Settings for ``up``: the environment, then ``env_file``, then what an earlier ``up`` kept in the home;
        missing credentials get local defaults (the Postgres user ``postgres``) or fresh random values."""
        home = home.expanduser().resolve()
        home.mkdir(parents=True, exist_ok=True)
        kept = read_env_file(home / SETTINGS_FILE)
        given = {**kept, **(read_env_file(env_file) if env_file else {})}
        variables = set(StackSettings.variables().values())
        given.update({k: v for k, v in os.environ.items() if k in variables})
        defaults = {"POSTGRES_USER": "postgres", "AWS_ACCESS_KEY_ID": "mlops", **generate_secrets()}
        # Natively the running Postgres is used as it is (trust auth here): no password unless one is given.
        defaults["POSTGRES_PASSWORD"] = ""
        values = {**defaults, **{k: v for k, v in given.items() if v != ""}}
        stack_settings = StackSettings.from_env(values)
        file = home / SETTINGS_FILE
        # Created private (0600) before a secret is written: never readable by others, not even briefly.
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(
                "# The settings `mlops stack up` used (secrets included): keep it private.\n"
                + "".join(f"{k}={v}\n" for k, v in stack_settings.to_env().items())
            )
        return cls(home, stack_settings)

    @classmethod
    def load(cls, home: Path) -> NativeStack:
        home = home.expanduser().resolve()
        return cls(home, StackSettings.from_env(read_env_file(home / SETTINGS_FILE)))

    def env(self, service: str) -> dict[str, str]:
        """The full environment of one of our processes: the caller's, less the stack's own variables."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(_OWNED_PREFIXES)}
        base["PATH"] = f"{self.bin_dir}{os.pathsep}{base.get('PATH', '')}"
        return {
            **base,
            **service_env(self.settings, "native", service, home=str(self.home), repo=str(self.repo)),
        }

    def client_env(self) -> dict[str, str]:
        """The variables a client of the stack needs (MLflow, S3, our package): ``mlops stack env``."""
        return service_env(self.settings, "native", "model-server", home=str(self.home), repo=str(self.repo))

    # Processes ------------------------------------------------------------------------------------------------
    def _pidfile(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def pid(self, name: str) -> int | None:
        """The pid of a process we started, if it is still alive."""
        try:
            pid = int(self._pidfile(name).read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> int:
        """Start ``argv`` in its own process group, output to ``logs/<name>.log``; record its pid."""
        if pid := self.pid(name):
            return pid
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / f"{name}.log", "ab") as out:
            process = subprocess.Popen(
                argv,
                env=env or self.env(name),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.home,
                start_new_session=True,
            )
        self._pidfile(name).write_text(str(process.pid))
        log.info("started %s (pid %d): %s", name, process.pid, " ".join(argv[:3]))
        return process.pid

    def stop(self, name: str, timeout: float = 30.0) -> int | None:
        """SIGTERM the process group we started under ``name``, SIGKILL after ``timeout``; its pid if it ran."""
        pid = self.pid(name)
        self._pidfile(name).unlink(missing_ok=True)
        if pid is None:
            return None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        wait_until(lambda: not _group_alive(pid), timeout, interval=0.2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        return pid

    def tail(self, name: str, chars: int = 3000) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"

    def _wait(self, name: str, probe: Callable[[], bool], timeout: float) -> None:
        """Poll ``probe`` until it answers; fail at once if the process we started for it has exited."""

        def healthy() -> bool:
            if probe():
                return True
            if self._pidfile(name).exists() and self.pid(name) is None:
                raise StackError(
                    f"{name} exited at start; its log ({self.log_dir / name}.log) ends:\n{self.tail(name)}"
                )
            return False

        if not wait_until(healthy, timeout, interval=0.5):
            raise StackError(f"{name} not healthy after {timeout:.0f} s; its log ends:\n{self.tail(name)}")

    # Services -------------------------------------------------------------------------------------------------
    def _postgres(self) -> None:
        s = self.settings
        if not _tcp(s.postgres_port):
            data = self.home / "postgres"
            initdb = shutil.which("initdb") or shutil.which("initdb", path="/usr/lib/postgresql/16/bin")
            server = shutil.which("postgres") or str(Path(initdb or "").with_name("postgres"))
            if not initdb or not Path(server).exists():
                raise StackError(
                    f"no Postgres answers on {HOST}:{s.postgres_port} and initdb is not installed"
                )
            if os.geteuid() == 0:
                raise StackError(
                    f"no Postgres answers on {HOST}:{s.postgres_port}, and Postgres refuses to run as root: "
                    "start one as the postgres user, or run `mlops stack up` as another user"
                )
            if not (data / "PG_VERSION").exists():
                subprocess.run(
                    [initdb, "-D", str(data), "-U", s.postgres_user, "--auth=trust", "-E", "UTF8"],
                    check=True, capture_output=True,
                )  # fmt: skip
            self.spawn("postgres", [server, "-D", str(data), "-p", str(s.postgres_port), "-h", HOST,
                                    "-k", str(self.run_dir)])  # fmt: skip
            self._wait("postgres", lambda: _tcp(s.postgres_port), 60)
        create_databases(s)

    def _redis(self) -> None:
        s = self.settings
        if _tcp(s.redis_port):
            return
        server = shutil.which("redis-server")
        if not server:
            raise StackError(f"no Redis answers on {HOST}:{s.redis_port} and redis-server is not installed")
        (self.home / "redis").mkdir(exist_ok=True)
        self.spawn("redis", [server, "--port", str(s.redis_port), "--bind", HOST, "--dir",
                             str(self.home / "redis"), "--save", "", "--appendonly", "no"])  # fmt: skip
        self._wait("redis", lambda: _tcp(s.redis_port), 30)

    def _s3(self) -> None:
        s = self.settings
        if not _tcp(s.s3_port):
            # moto's S3 with its objects kept in <home>/s3 (mlops.tooling.stack_s3): they outlive `down`.
            argv = [sys.executable, "-m", "mlops.tooling.stack_s3", "--host", HOST, "--port", str(s.s3_port),
                    "--data", str(self.home / "s3")]  # fmt: skip
            self.spawn("s3", argv)
            self._wait("s3", lambda: _http(f"http://{HOST}:{s.s3_port}/moto-api/") is not None, 120)
        create_buckets(s, f"http://{HOST}:{s.s3_port}")

    def _check_registry(self) -> None:
        """Refuse to go on when the registry names versions whose artifacts the S3 API no longer has."""
        from mlops.tooling.stack_s3 import missing_artifacts

        s = self.settings
        if missing := missing_artifacts(s, f"http://{HOST}:{s.s3_port}"):
            raise StackError(
                f"the registry (database {s.mlflow_db}) names model versions whose artifacts are gone from the "
                f"S3 API on {HOST}:{s.s3_port}, so the model server could not load them:\n  "
                + "\n  ".join(missing)
                + f"\nThe stack keeps its objects in {self.home / 's3'}; a stack started before it did lost them "
                "when it stopped. Put the objects back, or start afresh: `mlops stack down --purge` (drops the "
                "Airflow and MLflow databases), `mlops stack up`, then train again."
            )

    def _smtp(self) -> None:
        s = self.settings
        if _tcp(s.smtp_port):
            return
        maildir = self.home / "mail"  # a Maildir: every message is a file in mail/new
        for sub in ("cur", "new", "tmp"):
            (maildir / sub).mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"{HOST}:{s.smtp_port}",
                "-c", "aiosmtpd.handlers.Mailbox", str(maildir)]  # fmt: skip
        self.spawn("smtp", argv)
        self._wait("smtp", lambda: _tcp(s.smtp_port), 30)

    def _mlflow(self) -> None:
        s = self.settings
        argv = mlflow_command(s, "native")
        argv[0] = str(self.bin_dir / "mlflow")
        self.spawn("mlflow", argv)
        self._wait("mlflow", lambda: _http(f"http://{HOST}:{s.mlflow_port}/health") == 200, 120)

    def _airflow(self, workers: int) -> None:
        from mlops.tooling.stack import write_auth_file

        env = self.env("airflow-init")
        migrated = subprocess.run(
            [str(self.bin_dir / "airflow"), "db", "migrate"],
            env=env,
            capture_output=True,
            text=True,
            cwd=self.home,
        )
        if migrated.returncode != 0:
            raise StackError(f"airflow db migrate failed:\n{(migrated.stdout + migrated.stderr)[-3000:]}")
        write_auth_file(
            {
                **env,
                "AIRFLOW_ADMIN_USER": self.settings.airflow_admin_user,
                "AIRFLOW_ADMIN_PASSWORD": self.settings.airflow_admin_password,
            }
        )
        for name in AIRFLOW_SERVICES:
            self.spawn(name, self._airflow_argv(name))
        for index in range(1, workers + 1):
            self.start_worker(index)
        url = f"http://{HOST}:{self.settings.airflow_port}/api/v2/monitor/health"
        self._wait("airflow-apiserver", lambda: _http(url) == 200, 180)

    def _airflow_argv(self, name: str, worker: str = "worker") -> list[str]:
        argv = airflow_command(self.settings, name, worker_name=worker)
        argv[0] = str(self.bin_dir / "airflow")
        return argv

    def worker_name(self, index: int) -> str:
        return "airflow-worker" if index == 1 else f"airflow-worker-{index}"

    def start_worker(self, index: int) -> int:
        """Start Celery worker number ``index`` (1, 2, ...); each has its own log server port."""
        name = self.worker_name(index)
        env = self.env("airflow-worker")
        env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(self.settings.worker_log_port + index - 1)
        return self.spawn(name, self._airflow_argv("airflow-worker", worker=f"worker{index}"), env)

    def _model_server(self) -> None:
        s = self.settings
        argv = model_server_command(s, "native")
        argv[0] = str(self.bin_dir / "mlops")
        self.spawn("model-server", argv)
        self._wait("model-server", lambda: _http(f"http://{HOST}:{s.model_port}/health") == 200, 120)

    # Commands -------------------------------------------------------------------------------------------------
    def up(self, workers: int = 1, progress: Callable[[str], None] = log.info) -> None:
        """Start every service that is not running yet (and create databases and buckets)."""
        steps: list[tuple[str, Callable[[], None]]] = [
            ("postgres", self._postgres),
            ("redis", self._redis),
            ("s3 (moto)", self._s3),
            ("registry", self._check_registry),
            ("smtp (aiosmtpd)", self._smtp),
            ("mlflow", self._mlflow),
            ("airflow", lambda: self._airflow(workers)),
            ("model server", self._model_server),
        ]
        for label, step in steps:
            started = time.monotonic()
            step()
            progress(f"{label:<16} ok ({time.monotonic() - started:.1f} s)")

    def started(self) -> list[str]:
        """Names of the processes we started and recorded, in start order (pid files' times)."""
        if not self.run_dir.exists():
            return []
        files = sorted(self.run_dir.glob("*.pid"), key=lambda p: p.stat().st_mtime)
        return [p.stem for p in files]

    def down(self, progress: Callable[[str], None] = log.info) -> list[str]:
        """Stop every process ``up`` started, newest first; the names of those that ran (each is reported with
        its pid through ``progress``). Stopping a stopped stack does nothing."""
        stopped = []
        for name in reversed(self.started()):
            if pid := self.stop(name):
                stopped.append(name)
                progress(f"stopped {name} (pid {pid})")
        return stopped

    def status(self) -> list[ServiceStatus]:
        """Each service's health, probed the way its clients reach it."""
        s = self.settings
        health = _json(f"http://{HOST}:{s.airflow_port}/api/v2/monitor/health") or {}
        result = []

        def add(name: str, ok: bool | None, detail: str = "") -> None:
            pid = self.pid(name)
            if ok is None:
                ok = pid is not None
            state = "healthy" if ok else ("unhealthy" if pid else "stopped")
            if ok and pid is None and name not in self.started():
                state = "external"
            result.append(ServiceStatus(name, state, detail, pid, NATIVE_PROGRAMS.get(name, "")))

        add("postgres", _tcp(s.postgres_port), f"{HOST}:{s.postgres_port} dbs {s.airflow_db}, {s.mlflow_db}")
        add("redis", _tcp(s.redis_port), f"{HOST}:{s.redis_port}/{s.redis_db}")
        add(
            "s3",
            _tcp(s.s3_port),
            f"http://{HOST}:{s.s3_port} buckets {s.data_bucket}, {s.artifact_bucket}; objects in {self.home / 's3'}",
        )
        add("smtp", _tcp(s.smtp_port), f"{HOST}:{s.smtp_port}, messages in {self.home / 'mail'}")
        add("mlflow", _http(f"http://{HOST}:{s.mlflow_port}/health") == 200, f"http://{HOST}:{s.mlflow_port}")
        add("airflow-apiserver", bool(health), f"http://{HOST}:{s.airflow_port}")
        for name, key in (("airflow-scheduler", "scheduler"), ("airflow-dag-processor", "dag_processor"),
                          ("airflow-triggerer", "triggerer")):  # fmt: skip
            part = health.get(key) or {}
            add(
                name,
                part.get("status") == "healthy" if health else None,
                f"heartbeat {part.get('latest_' + key + '_heartbeat', '-')}",
            )
        for name in [n for n in self.started() if n.startswith("airflow-worker")] or ["airflow-worker"]:
            add(name, None, f"queue {s.celery_queue}")
        add(
            "model-server",
            _http(f"http://{HOST}:{s.model_port}/health") == 200,
            f"http://{HOST}:{s.model_port}",
        )
        return result


# Helpers ------------------------------------------------------------------------------------------------------
def create_databases(settings: StackSettings) -> None:
    """Create the Airflow and MLflow databases in the Postgres on 127.0.0.1 when they do not exist."""
    import psycopg
    from psycopg import sql

    uri = postgres_uri(settings, "native", "postgres").replace("postgresql+psycopg", "postgresql")
    try:
        with psycopg.connect(uri, autocommit=True, connect_timeout=10) as conn:
            for name in (settings.airflow_db, settings.mlflow_db):
                if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        raise StackError(
            f"cannot create the databases in Postgres on {HOST}:{settings.postgres_port}: {exc}"
        ) from exc


def drop_databases(settings: StackSettings) -> None:
    """Drop the stack's two databases (``mlops stack down --purge``)."""
    import psycopg
    from psycopg import sql

    uri = postgres_uri(settings, "native", "postgres").replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(uri, autocommit=True, connect_timeout=10) as conn:
        for name in (settings.airflow_db, settings.mlflow_db):
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def create_buckets(settings: StackSettings, endpoint: str) -> None:
    client = s3_client(settings, endpoint)
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    for bucket in (settings.data_bucket, settings.artifact_bucket):
        if bucket not in existing:
            client.create_bucket(Bucket=bucket)


def _tcp(port: int, host: str = HOST) -> bool:
    """Whether something accepts TCP connections on ``host:port`` (what the clients of a service need)."""
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def _http(url: str, timeout: float = 5.0) -> int | None:
    """The HTTP status ``GET url`` answers (after redirects), or None when nothing answers."""
    try:
        return httpx.get(url, timeout=timeout, follow_redirects=True).status_code
    except httpx.HTTPError:
        return None


def _json(url: str) -> dict[str, Any] | None:
    """The JSON object a successful ``GET url`` answers, or None (no answer, an error status, not an object)."""
    try:
        body = httpx.get(url, timeout=5.0, follow_redirects=True).raise_for_status().json()
    except (httpx.HTTPError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie has exited: only its exit status is left)."""
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # another user's process: it exists
        return True


def _group_alive(pgid: int) -> bool:
    """Whether a process of process group ``pgid`` still runs (zombies count as gone)."""
    for process in psutil.process_iter(["status"]):
        with contextlib.suppress(ProcessLookupError):
            if process.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(process.pid) == pgid:
                return True
    return False
