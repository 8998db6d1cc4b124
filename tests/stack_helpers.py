"""What the native-stack tests share: the ``MLOPS_STACK_*`` variables of a stack of their own (free ports, names
with a random tag, so several stacks share the machine's Postgres and Redis), and polling until something holds.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from receivers import free_port


def stack_variables(prefix: str) -> tuple[str, dict[str, str]]:
    """A random tag ``<prefix>_<8 hex>`` and the stack's variables: free ports, databases, buckets, queue."""
    tag = f"{prefix}_{uuid.uuid4().hex[:8]}"
    ports = ("AIRFLOW", "MLFLOW", "S3", "MODEL", "SMTP", "WORKER_LOG")
    values = {f"MLOPS_STACK_{name}_PORT": str(free_port()) for name in ports}
    values.update(
        {
            "MLOPS_STACK_AIRFLOW_DB": f"{tag}_airflow",
            "MLOPS_STACK_MLFLOW_DB": f"{tag}_mlflow",
            "MLOPS_STACK_DATA_BUCKET": f"{tag.replace('_', '-')}-data",
            "MLOPS_STACK_ARTIFACT_BUCKET": f"{tag.replace('_', '-')}-artifacts",
            "MLOPS_STACK_CELERY_QUEUE": tag,
        }
    )
    return tag, values


def eventually(what: str, probe: Callable[[], Any], timeout: float, interval: float = 2.0) -> Any:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` and the last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not after {timeout:.0f} s (last seen: {last!r})")
