"""Human approval before deployment, through Airflow: the training DAG waits in the ``approve`` task (Airflow's
human-in-the-loop ApprovalOperator) until a person answers, and a timeout counts as a rejection.

``dag.test()`` runs in a thread and, like the real scheduler, leaves the task parked in ``awaiting_input``; the
test answers the way the Airflow UI does (the core API's HITL route, called in process with a user) or lets the
scheduler's timeout sweep answer with the default (Reject).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from dagtools import champion, task_states

from mlops.config import PipelineConfig, load_config

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
PIPELINE = "breast_cancer"


def _config(timeout_minutes: float) -> PipelineConfig:
    config = load_config(REPO / "include" / "pipelines" / "breast_cancer.yaml")
    data = config.model_dump(mode="json")
    data["deploy"]["approval"] = {"required": True, "timeout_minutes": timeout_minutes}
    data["deploy"]["smoke_test"]["enabled"] = False  # not what these tests are about
    data["alerts"] = []
    return PipelineConfig.model_validate(data)


def _prepare_main_thread() -> None:
    """Import and configure in this thread what it will use while dag.test() runs in another: two threads
    importing Airflow's models (and configuring SQLAlchemy's mappers) at once deadlock on the import lock."""
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser  # noqa: F401
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail  # noqa: F401
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner  # noqa: F401
    from airflow.models import import_all_models
    from sqlalchemy.orm import configure_mappers

    import_all_models()
    configure_mappers()


def _run(
    config: PipelineConfig, data_uri: Path, respond: Callable[[Any], dict[str, Any]]
) -> tuple[Any, dict[str, str], dict[str, Any]]:
    """dag.test() here (it needs the main thread for its signals); ``respond`` runs in a thread once the
    approve task waits, answers it and returns what it saw meanwhile."""
    from mlops.airflow.dag_factory import build_training_dag

    _prepare_main_thread()
    dag = build_training_dag(config)
    seen: dict[str, Any] = {}

    def responder() -> None:
        try:
            seen.update(respond(_parked(config.training_dag_id)))
        except BaseException as exc:  # raised again in the test's thread
            seen["error"] = exc

    thread = threading.Thread(target=responder, daemon=True)
    thread.start()
    # force: some runs here train the same batch again (their approval settings, not the model, differ).
    conf = {"data_uri": str(data_uri), "model": None, "reason": "approval test", "force": True}
    dag_run = dag.test(run_conf=conf)
    thread.join(timeout=60)
    if "error" in seen:
        raise seen["error"]
    return dag_run, task_states(dag_run), seen


def _parked(dag_id: str, deadline: float = 180.0) -> Any:
    """The ``approve`` task instance once it waits for input."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    stop = time.monotonic() + deadline
    while time.monotonic() < stop:
        with create_session() as session:
            ti = session.scalars(
                select(TaskInstance).where(
                    TaskInstance.dag_id == dag_id,
                    TaskInstance.task_id == "approve",
                    TaskInstance.state == TaskInstanceState.AWAITING_INPUT,
                )
            ).first()
            if ti is not None:
                return ti
        time.sleep(0.5)
    raise AssertionError("the approve task never waited for input")


def _answer(ti: Any, option: str, user: str) -> None:
    """Answer as the Airflow UI does: the core API's update route, with a logged-in user."""
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
    from airflow.utils.session import create_session

    with create_session() as session:
        update_hitl_detail(
            dag_id=ti.dag_id,
            dag_run_id=ti.run_id,
            task_id=ti.task_id,
            update_hitl_detail_payload=UpdateHITLDetailPayload(chosen_options=[option]),
            user=SimpleAuthManagerUser(username=user, role="admin"),
            session=session,
        )


def test_dag_shape_is_unchanged_unless_approval_is_required() -> None:
    from mlops.airflow.dag_factory import build_training_dag

    plain = build_training_dag(load_config(REPO / "include" / "pipelines" / "breast_cancer.yaml"))
    assert "approve" not in plain.task_ids
    assert plain.get_task("gate").downstream_task_ids == {"deploy", "gate_rejected"}
    gated = build_training_dag(_config(60))
    approve = gated.get_task("approve")
    assert gated.get_task("gate").downstream_task_ids == {"approve", "gate_rejected"}
    assert approve.downstream_task_ids == {"deploy"}
    assert approve.response_timeout.total_seconds() == 3600 and approve.defaults == ["Reject"]


def test_a_person_approves_and_the_challenger_is_deployed(
    airflow_db: Path, mlops_home: Path, bc_batches: dict[str, Path]
) -> None:
    from mlops import registry
    from mlops.registry import governance

    def approve(ti: Any) -> dict[str, Any]:
        seen = {
            "champion": champion(PIPELINE),
            "verdict": registry.get_version(PIPELINE, 1).tags["gate.verdict"],
            "requested": [e for e in registry.audit_trail(PIPELINE, 1) if e["event"] == "approval_requested"],
        }
        _answer(ti, "Approve", "alice")
        return seen

    dag_run, states, seen = _run(_config(60), bc_batches["first"], approve)

    assert seen["champion"] is None, "nothing is deployed while the approval waits"
    assert seen["verdict"] == "passed"
    assert seen["requested"] and "/required_actions" in seen["requested"][0]["link"]
    assert dag_run.state == "success", states
    assert states["approve"] == "success" and states["deploy"] == "success"
    assert champion(PIPELINE) == 1
    approved = [e for e in registry.audit_trail(PIPELINE, 1) if e["event"] == "approved"]
    assert approved and approved[0]["by"] == "alice"
    tags = registry.get_version(PIPELINE, 1).tags
    assert (tags["approval.status"], tags["approval.by"]) == ("approved", "alice")
    promoted = [e for e in registry.audit_trail(PIPELINE, 1) if e["event"] == "promoted"]
    assert promoted[0]["evidence"]["approval"]["by"] == "alice"
    audit = governance.render_audit(governance.audit_report(PIPELINE), "table")
    assert "approved" in audit and "alice" in audit
    # The card was logged after the gate and refreshed after the approval and the promotion.
    card = governance.load_text(registry.get_version(PIPELINE, 1).run_id, "card/model_card.md")
    assert "| approved | alice |" in card and "| promoted |" in card and "| **Status** | champion |" in card


def test_a_rejection_and_a_timeout_keep_the_champion(
    airflow_db: Path, mlops_home: Path, bc_batches: dict[str, Path]
) -> None:
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner

    from mlops import registry
    from mlops.registry import cards

    def answer(option: str, user: str) -> Callable[[Any], dict[str, Any]]:
        def respond(ti: Any) -> dict[str, Any]:
            _answer(ti, option, user)
            return {}

        return respond

    def let_it_time_out(ti: Any) -> dict[str, Any]:
        time.sleep(1.5)  # past the deadline: the scheduler's sweep answers with the default, Reject
        SchedulerJobRunner(job=Job()).check_awaiting_input_timeouts()
        return {}

    # v1 becomes champion (approved by bob), then v2 is rejected by carol.
    assert _run(_config(60), bc_batches["first"], answer("Approve", "bob"))[0].state == "success"
    dag_run, states, _ = _run(_config(60), bc_batches["second"], answer("Reject", "carol"))
    assert dag_run.state == "success", states  # a rejection is an outcome, not a crash
    assert (states["approve"], states["deploy"]) == ("success", "skipped")
    assert champion(PIPELINE) == 1
    rejected = [e for e in registry.audit_trail(PIPELINE, 2) if e["event"] == "approval_rejected"]
    assert rejected and rejected[0]["by"] == "carol"
    assert registry.get_version(PIPELINE, 2).tags["deploy.status"] == "not_approved"

    # v3 waits past its deadline.
    dag_run, states, _ = _run(_config(0.01), bc_batches["second"], let_it_time_out)
    assert dag_run.state == "success", states
    assert states["deploy"] == "skipped" and champion(PIPELINE) == 1
    timed_out = [e for e in registry.audit_trail(PIPELINE, 3) if e["event"] == "approval_timed_out"]
    assert timed_out and timed_out[0]["by"] == "timeout"
    card = cards.build_card(PIPELINE, 3).to_markdown()
    assert "| approval_timed_out | timeout |" in card
