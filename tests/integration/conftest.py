"""What the integration tests share: a native stack per test module, and its public surfaces as clients.

A module configures its stack with a function ``stack_env(home, settings)`` that writes what it needs under
``home`` (its pipeline configs) and returns the variables to add (``MLOPS_PIPELINES_DIR``, worker settings);
``settings`` holds the stack's ``MLOPS_STACK_*`` variables (free ports, names of its own) for the configs to
point at. Every fixture here is module-scoped: each module talks to its own stack.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from stack_helpers import stack_variables

from mlops.tooling.stack_native import NativeStack, drop_databases


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    """The native stack in a temporary home, on free ports, with databases, buckets and a Celery queue named
    after the module and a random tag (so several stacks share the machine's Postgres and Redis). Stops it,
    drops its databases and deletes its queue afterwards."""
    configure = request.module.stack_env
    prefix = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    home = tmp_path_factory.mktemp(prefix)
    _, settings = stack_variables(prefix)
    settings.update(configure(home, dict(settings)))
    with pytest.MonkeyPatch.context() as mp:
        for key, value in settings.items():
            mp.setenv(key, value)
        native = NativeStack.prepare(home)
        try:
            native.up(workers=1)
            yield native
        finally:
            native.down()
            drop_databases(native.settings)
            import redis  # the Celery broker's client: leave no queue of ours behind in the shared Redis

            s = native.settings
            redis.Redis(host="127.0.0.1", port=s.redis_port, db=s.redis_db).delete(s.celery_queue)


@pytest.fixture(scope="module")
def airflow_api(stack: NativeStack) -> Any:
    """An ``apache-airflow-client`` ApiClient logged in as the stack's admin (JWT from /auth/token)."""
    import airflow_client.client as airflow_client

    s = stack.settings
    base = f"http://127.0.0.1:{s.airflow_port}"
    reply = httpx.post(
        f"{base}/auth/token",
        json={"username": s.airflow_admin_user, "password": s.airflow_admin_password},
        timeout=30,
    )
    assert reply.status_code in (200, 201), reply.text
    config = airflow_client.Configuration(host=base, access_token=reply.json()["access_token"])
    with airflow_client.ApiClient(config) as client:
        yield client


@pytest.fixture(scope="module")
def s3(stack: NativeStack) -> Any:
    """A boto3 S3 client of the stack's S3 API."""
    import boto3

    s = stack.settings
    return boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{s.s3_port}",
        aws_access_key_id=s.aws_access_key_id,
        aws_secret_access_key=s.aws_secret_access_key,
        region_name=s.region,
    )


@pytest.fixture(scope="module")
def mlflow_client(stack: NativeStack) -> Any:
    """An ``MlflowClient`` of the stack's tracking server."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"http://127.0.0.1:{stack.settings.mlflow_port}")
