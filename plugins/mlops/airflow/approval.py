"""Human approval before deployment (``deploy.approval.required``), on Airflow 3's human-in-the-loop operator.

After the gate passes, the ``approve`` task of ``<name>_training`` asks a person in the Airflow UI (*Required
actions*, or the task's page) to approve or reject the challenger, and sends a Slack/email message with the
link. The task waits without holding a worker slot. *Approve* lets ``deploy`` run; *Reject* skips it; no answer
within ``timeout_minutes`` counts as a rejection (the request's default option). Every outcome is audited on the
version (``approval_requested``, ``approved``, ``approval_rejected`` or ``approval_timed_out``, with who and
when), tagged (``approval.status``, ``approval.by``) and shown on the model card and by ``mlops audit``.

The message goes to the routes of the pipeline's ``alerts`` that list ``approval`` in their events; when none
does, to every route: a required approval must reach someone.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator

from mlops.airflow.task_ids import VERDICT_KEY
from mlops.config import AlertRoute, PipelineConfig

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)

#: ``approval.status`` values on a version, by the option chosen (or the timeout).
OUTCOMES = {"approved": "approved", "rejected": "approval_rejected", "timed_out": "approval_timed_out"}


def approval_routes(routes: list[AlertRoute] | tuple[AlertRoute, ...]) -> list[AlertRoute]:
    """The routes an approval request goes to: those subscribed to ``approval``, else all of them."""
    subscribed = [r for r in routes if "approval" in r.events]
    if subscribed:
        return subscribed
    return [r.model_copy(update={"events": [*r.events, "approval"]}) for r in routes]


def request_body(pipeline: str, verdict: dict[str, Any], semver: str | None, card_uri: str | None) -> str:
    """The Markdown shown to the approver: what is asked, the gate's reasons and metrics, where the card is."""
    champion = f"v{verdict['champion_version']}" if verdict.get("champion_version") else "none (first model)"
    lines = [
        f"**{pipeline} v{verdict['challenger_version']}** ({semver or 'no semantic version'}) passed the gate "
        f"against champion {champion}. Approve to deploy it (smoke test, then promotion); reject to keep the "
        "champion. No answer before the deadline counts as a rejection.",
        "",
        "Gate:",
        *(f"- {reason}" for reason in verdict.get("reasons", [])),
        "",
        "| metric | challenger | champion |",
        "| --- | --- | --- |",
    ]
    champion_metrics = verdict.get("champion_metrics") or {}
    for metric, value in sorted((verdict.get("challenger_metrics") or {}).items()):
        other = champion_metrics.get(metric)
        lines.append(f"| {metric} | {value:.4f} | {f'{other:.4f}' if other is not None else '-'} |")
    if card_uri:
        lines += [
            "",
            f"Model card: `{card_uri}` (or `mlops card {pipeline} {verdict['challenger_version']}`).",
        ]
    return "\n".join(lines)


def record_decision(
    config: PipelineConfig, version: int, outcome: str, by: str | None, at: str | None
) -> dict[str, Any]:
    """Audit an approval outcome (``approved``, ``rejected``, ``timed_out``) on the version, and refresh its
    model card."""
    from mlops import registry
    from mlops.registry.cards import refresh_cards

    event = OUTCOMES[outcome]
    who = by or ("timeout" if outcome == "timed_out" else "unknown")
    details = {"by": who, "responded_at": at, "timeout_minutes": config.deploy.approval.timeout_minutes}
    entry = registry.record_audit(config.name, version, event, details)
    tags = {"approval.status": outcome, "approval.by": who}
    if outcome != "approved":
        tags["deploy.status"] = "not_approved"
    registry.set_version_tags(config.name, version, tags)
    refresh_cards(config.name, [version])
    return entry


class DeploymentApprovalOperator(ApprovalOperator):
    """Ask a person to approve the challenger of the gate's ``verdict``; a timeout is a rejection. Audited.

    A shell like the other operators: the request's text and the audit come from :mod:`mlops.airflow.approval`.
    Once approved it hands the verdict on (XCom key ``verdict``) to ``deploy``, its only downstream task, and
    returns the outcome (version, option, who, when) that deploy keeps in the promotion's audit entry.
    """

    ui_color = "#e9d8fd"
    template_fields = (*ApprovalOperator.template_fields, "verdict")

    def __init__(self, *, config: PipelineConfig, verdict: Any, **kwargs: Any) -> None:
        approval = config.deploy.approval
        users = [{"id": user, "name": user} for user in approval.assigned_users]
        super().__init__(
            subject=f"Deploy {config.name}?",
            defaults=ApprovalOperator.REJECT,  # what the timeout answers
            response_timeout=timedelta(minutes=approval.timeout_minutes),
            assigned_users=users or None,
            **kwargs,
        )
        self.config = config
        self.verdict = verdict

    def execute(self, context: Context) -> Any:
        from mlops import registry
        from mlops.airflow.alerts import alert_from_context, dispatch, task_log_url

        verdict = self.verdict
        version = int(verdict["challenger_version"])
        tags = registry.get_version(self.config.name, version).tags
        semver = tags.get("mlops.semver")
        self.subject = f"Deploy {self.config.name} v{version} ({semver or '-'})?"
        self.body = request_body(self.config.name, verdict, semver, tags.get("mlops.card"))
        try:
            from mlops.airflow.alerts import airflow_base_url

            link = self.generate_link_to_ui(task_instance=context["ti"], base_url=airflow_base_url())
        except Exception:  # a link is a convenience: the task log URL still leads there
            ti = context["ti"]
            link = task_log_url(ti.dag_id, ti.run_id, ti.task_id)
        registry.record_audit(
            self.config.name,
            version,
            "approval_requested",
            {"link": link, "timeout_minutes": self.config.deploy.approval.timeout_minutes},
        )
        alert = alert_from_context(
            self.config.name,
            context,
            event="approval",
            title=f"approval needed: deploy v{version} ({semver or '-'})?",
            summary=f"Approve or reject in Airflow: {link}\n" + "; ".join(verdict.get("reasons", [])),
            details={"approve or reject": link},
        )
        dispatch(dataclasses.replace(alert, severity="warning"), approval_routes(self.config.alerts), context)
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        from mlops.airflow.alerts import send_event

        version = int(self.verdict["challenger_version"])
        chosen = (event.get("chosen_options") or [None])[0]
        user = event.get("responded_by_user") or {}
        responded_at = event.get("responded_at")
        at = responded_at.isoformat() if hasattr(responded_at, "isoformat") else responded_at
        if chosen == self.APPROVE:
            outcome = "approved"
        elif event.get("timedout") or (chosen == self.REJECT and not user):
            outcome = "timed_out"
        else:
            outcome = "rejected"
        if "error" in event and event.get("error_type") == "timeout":
            outcome = "timed_out"
        by = user.get("name") or user.get("id")
        record_decision(self.config, version, outcome, by, at)
        if outcome == "approved":
            context["ti"].xcom_push(key=VERDICT_KEY, value=self.verdict)
        else:
            send_event(
                self.config.name,
                self.config.alerts,
                "rejected",
                f"challenger v{version} not deployed: "
                + ("no approval before the deadline" if outcome == "timed_out" else f"rejected by {by}"),
                "The champion serves on.",
                context,
            )
        super().execute_complete(context, event)  # skips deploy unless approved
        return {"version": version, "outcome": outcome, "by": by or "timeout", "at": at}
