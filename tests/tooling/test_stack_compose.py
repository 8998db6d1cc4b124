"""docker-compose.yaml is held honest: it is what ``mlops stack compose`` generates from ``mlops.tooling.stack``, it is a
valid Compose file (the Compose Specification's JSON schema), and its services, ports and settings are the
native stack's, host names and in-image paths aside. Plus the settings' own rules (env file, secrets)."""

from __future__ import annotations

import importlib.resources
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops.tooling import stack
from mlops.tooling.stack import StackSettings
from mlops.tooling.stack_native import NativeStack

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yaml"
HELPERS = {"airflow-init", "minio-init"}  # one-shot services: run to completion at start
# Settings whose values differ between compose and native on purpose, besides host names.
PATHS = {"AIRFLOW_HOME", "AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
         "MLOPS_HOME", "MLOPS_PIPELINES_DIR"}  # fmt: skip
BIND = {"AIRFLOW__API__HOST"}  # 0.0.0.0 in a container, 127.0.0.1 natively


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _known() -> StackSettings:
    """Settings with a recognisable value for every credential."""
    variables = StackSettings.variables()
    credentials = [variables[name] for name in ("postgres_user", "airflow_admin_user", "aws_access_key_id")]
    return StackSettings.from_env(
        {env: f"VALUE-{env}" for env in [*StackSettings.secret_variables(), *credentials]}
    )


def _interpolate(value: str, settings: StackSettings) -> str:
    """What compose makes of ``${VAR:?...}`` / ``${VAR:-}`` given these settings."""
    env = settings.to_env()
    return re.sub(r"\$\{(\w+)(?::[?-][^}]*)?\}", lambda m: env.get(m.group(1), ""), value).replace("$$", "$")


def _as_native(value: str) -> str:
    for service in ("postgres", "redis", "minio", "mailpit", "mlflow", "airflow-apiserver"):
        value = value.replace(f"@{service}:", "@127.0.0.1:").replace(f"//{service}:", "//127.0.0.1:")
    return value


def test_the_committed_compose_file_is_the_generated_one() -> None:
    assert COMPOSE.read_text() == stack.render_compose(), (
        "docker-compose.yaml is stale: run `.venv/bin/mlops stack compose > docker-compose.yaml`"
    )


def test_the_compose_file_is_valid_against_the_compose_specification(compose: dict[str, Any]) -> None:
    import jsonschema

    # The Compose Specification's schema, as vendored (with its Apache-2.0 license) by check-jsonschema.
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads(vendor.joinpath("compose-spec.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_the_schema_check_catches_a_broken_file(compose: dict[str, Any]) -> None:
    import jsonschema

    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    validator = jsonschema.Draft202012Validator(json.loads(vendor.joinpath("compose-spec.json").read_text()))
    broken = json.loads(json.dumps(compose))
    broken["services"]["redis"]["healthcheck"]["retries"] = "many"
    broken["services"]["mlflow"]["depends_on"]["postgres"]["condition"] = "service_ready"
    assert len(list(validator.iter_errors(broken))) >= 2


def test_the_services_are_the_stacks(compose: dict[str, Any]) -> None:
    expected = {svc.name for svc in stack.services(StackSettings.defaults())} | HELPERS
    assert set(compose["services"]) == expected
    for name, service in compose["services"].items():
        if name not in HELPERS:
            assert "healthcheck" in service, f"{name} has no health check"
            assert service["restart"] == "unless-stopped"
        assert "container_name" not in service, f"{name}: a container name would stop `--scale`"
    assert set(compose["volumes"]) == {
        "postgres-data",
        "redis-data",
        "minio-data",
        "airflow-logs",
        "model-server-journal",
    }
    assert compose["services"]["model-server"]["volumes"] == [
        "model-server-journal:/opt/airflow/mlops/journal"
    ]


def test_only_the_documented_ports_are_published_and_only_on_localhost(compose: dict[str, Any]) -> None:
    published = {name: svc["ports"] for name, svc in compose["services"].items() if "ports" in svc}
    expected = stack.published_ports(StackSettings.defaults())
    assert {name: [int(p.rsplit(":", 1)[1]) for p in ports] for name, ports in published.items()} == expected
    assert all(p.startswith("127.0.0.1:") for ports in published.values() for p in ports)
    docs = (REPO / "docs" / "deploy.md").read_text()
    for ports in expected.values():
        for port in ports:
            assert f"{port}" in docs, f"port {port} is published but docs/deploy.md does not mention it"


@pytest.mark.parametrize(
    "service",
    ["airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker",
     "mlflow", "model-server"],
)  # fmt: skip
def test_each_process_gets_the_native_settings_but_for_host_names(
    compose: dict[str, Any], service: str
) -> None:
    settings = _known()
    native = stack.service_env(settings, "native", service, home="/home", repo="/repo")
    in_compose = {
        k: _as_native(_interpolate(v, settings))
        for k, v in compose["services"][service]["environment"].items()
        if k not in ("DUMB_INIT_SETSID", "AIRFLOW_ADMIN_USER", "AIRFLOW_ADMIN_PASSWORD")
    }
    assert set(in_compose) == set(native)
    differing = {k for k in native if native[k] != in_compose[k]}
    assert differing <= PATHS | BIND, {k: (native[k], in_compose[k]) for k in differing - PATHS - BIND}


def test_the_mlflow_server_runs_the_same_command(compose: dict[str, Any]) -> None:
    settings = _known()
    in_compose = [_as_native(_interpolate(arg, settings)) for arg in compose["services"]["mlflow"]["command"]]
    native = stack.mlflow_command(settings, "native")
    # The same command but for the bind address and the extra Host header (the service name) it accepts.
    for command in (in_compose, native):
        for option in ("--host", "--allowed-hosts"):
            command[command.index(option) + 1] = "*"
    assert in_compose == native
    assert f"s3://{settings.artifact_bucket}" == native[native.index("--artifacts-destination") + 1]


def test_no_credential_is_in_the_compose_file() -> None:
    text = stack.render_compose(_known())
    assert "VALUE-" not in text
    for name in StackSettings.secret_variables():
        # Every mention of a secret is a reference that compose fills from .env.
        for line in text.splitlines():
            if f"{name}:" in line and "${" not in line and "$${" not in line:
                pytest.fail(f"{name} has a literal value in docker-compose.yaml: {line.strip()}")


def test_env_example_names_every_credential_and_holds_none() -> None:
    example = stack.read_env_file(REPO / ".env.example")
    assert set(StackSettings.defaults().missing_secrets()) <= set(example)
    assert all(example.get(name, "") == "" for name in StackSettings.secret_variables())


def test_the_image_is_the_official_airflow_image_of_our_versions() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert f"FROM {stack.AIRFLOW_IMAGE}\n" in dockerfile
    assert "-c /opt/mlops-src/constraints.txt" in dockerfile
    assert f"apache-airflow=={stack.AIRFLOW_VERSION}\n" in (REPO / "constraints.txt").read_text()


# The settings --------------------------------------------------------------------------------------------------
def test_settings_come_from_the_env_file_and_the_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# comment\nPOSTGRES_PASSWORD='from-file'\nMLOPS_STACK_AIRFLOW_PORT=9090\nexport AWS_ACCESS_KEY_ID=k\n"
    )
    settings = StackSettings.from_env({"MLOPS_STACK_AIRFLOW_PORT": "9191"}, env_file)
    assert (settings.postgres_password, settings.airflow_port, settings.aws_access_key_id) == (
        "from-file",
        9191,
        "k",
    )
    assert StackSettings.from_env(settings.to_env()) == settings


def test_the_environment_is_read_under_the_same_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_STACK_REDIS_PORT", "7777")
    monkeypatch.setenv("POSTGRES_PASSWORD", "from-env")
    monkeypatch.setenv("MLOPS_STACK_AIRFLOW_DB", "")  # empty: unset
    from_environment = StackSettings()
    assert from_environment == StackSettings.from_env()
    assert (from_environment.redis_port, from_environment.postgres_password, from_environment.airflow_db) == (
        7777,
        "from-env",
        "airflow",
    )
    assert StackSettings.defaults().redis_port == 6379  # the compose file's settings ignore the environment
    with pytest.raises(ValueError, match="redis_port"):
        StackSettings.from_env({"MLOPS_STACK_REDIS_PORT": "many"})


def test_missing_credentials_are_named() -> None:
    missing = StackSettings.defaults().missing_secrets()
    assert "POSTGRES_PASSWORD" in missing and "AIRFLOW_FERNET_KEY" in missing
    assert "AIRFLOW_CONN_SLACK_MLOPS" not in missing


def test_native_settings_generate_missing_secrets_once_and_keep_them_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in StackSettings.variables().values():
        monkeypatch.delenv(key, raising=False)
    first = NativeStack.prepare(tmp_path / "home")
    kept = tmp_path / "home" / "stack.env"
    assert stat.S_IMODE(os.stat(kept).st_mode) == 0o600
    assert first.settings.postgres_user == "postgres" and first.settings.postgres_password == ""
    assert len(first.settings.fernet_key) == 44 and first.settings.airflow_admin_password
    again = NativeStack.prepare(tmp_path / "home")
    assert again.settings == first.settings
    assert NativeStack.load(tmp_path / "home").settings == first.settings


def test_down_on_a_stack_that_never_ran_does_nothing(tmp_path: Path) -> None:
    assert NativeStack.load(tmp_path / "nothing").down() == []
    assert NativeStack.load(tmp_path / "nothing").down() == []


def test_the_auth_file_holds_the_password_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "passwords.json"
    env = {"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(path), "AIRFLOW_ADMIN_PASSWORD": "pw"}
    stack.write_auth_file(env)
    assert json.loads(path.read_text()) == {"admin": "pw"}
    from mlops.errors import StackError

    with pytest.raises(StackError, match="AIRFLOW_ADMIN_PASSWORD"):
        stack.write_auth_file({**env, "AIRFLOW_ADMIN_PASSWORD": ""})
