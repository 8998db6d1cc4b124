"""A minimal Airflow runtime for calling an operator's ``execute()`` directly (no scheduler): the task instance an
operator sees, and its context with the training form's params. Shared by the operator tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

#: The logical date of the contexts below.
WHEN = datetime(2026, 11, 26, tzinfo=UTC)
#: The training form's params as a run with its defaults gets them.
FORM = {"data_uri": "", "model": {}, "reason": "operator test", "training_window": "config", "force": False}


@dataclass
class TaskInstance:
    """What the operators use of Airflow's runtime task instance: ids and XCom pushes."""

    task: Any
    run_id: str = "manual__operator-test"
    try_number: int = 1
    map_index: int = -1
    xcom: dict[str, Any] = field(default_factory=dict)

    @property
    def dag_id(self) -> str:
        return self.task.dag_id

    @property
    def task_id(self) -> str:
        return self.task.task_id

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def context(task: Any, **params: Any) -> dict[str, Any]:
    """A context to execute ``task`` in: its task instance, the form's params (overridden by ``params``)."""
    return {"ti": TaskInstance(task), "params": {**FORM, **params}, "logical_date": WHEN}
