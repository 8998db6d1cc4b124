"""Data access by allow-list through Airflow (``dag.test()``): a run asked to ingest ``/etc/passwd`` fails its
``ingest`` task on the first try (the pipeline allows 2 retries: a refused location is permanent), nothing runs
after it, and nothing lands in the data store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dagtools import model_versions

pytestmark = pytest.mark.e2e
PIPELINE = "breast_cancer"


def test_a_batch_outside_the_landing_roots_fails_the_run_without_retries(
    dagbag: Any, mlops_home: Path
) -> None:
    dag = dagbag.get_dag(f"{PIPELINE}_training")
    assert dag.get_task("wait_for_batch").retries == 2  # what a transient error would get

    dag_run = dag.test(run_conf={"data_uri": "/etc/passwd", "model": None, "reason": "exfiltrate"})

    tis = {ti.task_id: ti for ti in dag_run.get_task_instances()}
    assert dag_run.state == "failed"
    first = tis["wait_for_batch"]  # refused before anything looks at the path, even whether it exists
    assert str(first.state) == "failed", first.state  # not up_for_retry
    assert first.try_number == 1
    steps = ("ingest", "validate", "train", "register", "gate")
    assert all(str(tis[t].state) == "upstream_failed" for t in steps)
    assert not model_versions(PIPELINE)
    stored = [p for p in (mlops_home / "store").rglob("*") if p.is_file()]
    assert not stored, f"nothing is copied: {stored}"
