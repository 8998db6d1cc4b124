"""One place that turns pipeline events into Slack and email messages.

An :class:`Alert` is built from an Airflow callback context (:func:`alert_from_context`) or from an operator
(:func:`send_event`) and delivered by :func:`dispatch` to every route of the pipeline config that subscribes
to its event. Routes name Airflow connections (``slackwebhook`` or ``smtp``); a route whose connection is not
defined, or whose delivery fails, writes the whole alert to the task log instead, and nothing here ever
raises into Airflow's callback machinery: an alert that cannot be sent must not hide the failure it reports.

This module is imported at DAG parse time: its top level imports only the standard library and ``mlops``'s
light modules. Airflow and its providers are imported inside the functions that send.

Example (DAG file)::

    alert = FailureAlert(config.name, config.alerts)
    DAG(..., default_args={"on_failure_callback": alert}, on_failure_callback=alert)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

from mlops.airflow.task_ids import ANALYZE, MLFLOW_EXPERIMENT_KEY, MLFLOW_RUN_KEY, TRAIN
from mlops.config import AlertEvent, AlertRoute, PipelineConfig
from mlops.config.settings import airflow_ui_url, mlflow_ui_url
from mlops.config.templating import render

__all__ = [
    "Alert",
    "FailureAlert",
    "Severity",
    "alert_from_context",
    "dispatch",
    "send_event",
    "summarize_error",
    "task_log_url",
]

log = logging.getLogger(__name__)

Severity = Literal["error", "warning", "info"]
SEVERITY: dict[str, Severity] = {
    "failure": "error",
    "rejected": "warning",
    "promoted": "info",
    "drift": "warning",
    "data_warning": "warning",
}
SUMMARY_LIMIT = 300
SUMMARY_LINES = 3
#: The tasks whose XCom holds the MLflow run (keys MLFLOW_RUN_KEY, MLFLOW_EXPERIMENT_KEY): training, monitoring.
MLFLOW_TASKS = (TRAIN, ANALYZE)
LOG_DELIVERY = "log"

_LABELS = {"error": "FAILURE", "warning": "WARNING", "info": "INFO"}
_SLACK_ICONS = {"error": ":red_circle:", "warning": ":warning:", "info": ":large_green_circle:"}
_HTML_COLOURS = {"error": "#b42318", "warning": "#b54708", "info": "#027a48"}


@dataclass(frozen=True)
class Alert:
    """One rendered-on-demand message about a pipeline event.

    Attributes:
        pipeline: Pipeline name (also the MLflow experiment name).
        event: What happened: ``failure``, ``rejected`` (gate) or ``promoted``.
        severity: ``error``, ``warning`` or ``info``.
        title: One line, e.g. ``task train failed``.
        summary: Short error summary or event description (a few lines at most).
        dag_id: The DAG of the run, if known.
        task_id: The task concerned, if any (a DAG-level alert may have none).
        run_id: The DAG run, if known.
        try_number: The task's try, if known.
        log_url: Link to the task's log in the Airflow UI, if known.
        mlflow_url: Link to the MLflow run or experiment, if known.
        details: Extra key/values shown under the summary (JSON-able values).
    """

    pipeline: str
    event: AlertEvent
    severity: Severity
    title: str
    summary: str
    dag_id: str | None = None
    task_id: str | None = None
    run_id: str | None = None
    try_number: int | None = None
    log_url: str | None = None
    mlflow_url: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def subject(self) -> str:
        """One-line email subject, e.g. ``[mlops][FAILURE] churn: task train failed``."""
        subject = f"[mlops][{_LABELS[self.severity]}] {self.pipeline}: {self.title}"
        return _truncate(" ".join(subject.split()), 200)

    def _facts(self) -> list[tuple[str, str]]:
        facts = [("Pipeline", self.pipeline)]
        facts += [
            (label, str(value))
            for label, value in (
                ("DAG", self.dag_id),
                ("Task", self.task_id),
                ("Run", self.run_id),
                ("Try", self.try_number),
            )
            if value is not None
        ]
        return facts

    def _links(self) -> list[tuple[str, str]]:
        return [(label, url) for label, url in (("Log", self.log_url), ("MLflow", self.mlflow_url)) if url]

    def text(self, *, slack: bool = False) -> str:
        """Plain text for Slack and the task log: headline, facts, summary, details, links.

        Args:
            slack: Bold the headline and escape ``&``, ``<``, ``>`` as Slack's mrkdwn requires (an error
                message holding ``<!channel>`` must not ping anyone).

        Returns:
            A few lines of text.
        """
        esc = _slack_escape if slack else str
        headline = f"[{_LABELS[self.severity]}] {self.pipeline}: {self.title}"
        lines = [f"{_SLACK_ICONS[self.severity]} *{esc(headline)}*" if slack else headline]
        lines.append(" | ".join(f"{label}: {esc(value)}" for label, value in self._facts()))
        if self.summary:
            label = "Error" if self.event == "failure" else "Summary"
            summary_lines = self.summary.splitlines() or [""]
            lines.append(f"{label}: {esc(summary_lines[0])}")
            lines.extend(f"  {esc(line)}" for line in summary_lines[1:])
        lines.extend(f"{esc(key)}: {esc(_short(value))}" for key, value in self.details.items())
        lines.extend(f"{label}: {url}" for label, url in self._links())
        return "\n".join(lines)

    def html(self) -> str:
        """A small self-contained HTML email body (template ``alert_email.html.j2``; every value escaped)."""
        details = [(str(key), _short(value)) for key, value in self.details.items()]
        return render(
            "alert_email.html.j2",
            colour=_HTML_COLOURS[self.severity],
            label=_LABELS[self.severity],
            pipeline=self.pipeline,
            title=self.title,
            rows=self._facts() + details,
            summary_label="Error" if self.event == "failure" else "Summary",
            summary=self.summary,
            links=self._links(),
        )


def summarize_error(error: BaseException | str | None, limit: int = SUMMARY_LIMIT) -> str:
    """A short summary of an exception: its type and the first lines of its message.

    Args:
        error: The exception (Airflow sometimes passes a plain string instead).
        limit: Maximum length in characters; a longer summary ends with ``…``.

    Returns:
        At most ``SUMMARY_LINES`` non-empty lines and ``limit`` characters; ``""`` for None.
    """
    if error is None:
        return ""
    if isinstance(error, BaseException):
        message = str(error).strip()
        name = type(error).__name__
        text = f"{name}: {message}" if message else name
    else:
        text = str(error).strip()
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    summary = "\n".join(lines[:SUMMARY_LINES])
    if len(lines) > SUMMARY_LINES:
        summary += " …"
    return _truncate(_redact(summary), limit)


def alert_from_context(
    config_or_name: PipelineConfig | str,
    context: Mapping[str, Any],
    *,
    event: AlertEvent = "failure",
    title: str | None = None,
    summary: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> Alert:
    """Build an :class:`Alert` from an Airflow callback (or task) context; never raises.

    Works with task-level callback contexts (``ti`` and ``exception``), DAG-level ones (``ti`` of the task
    that failed the run, ``reason``, no exception) and minimal ones (``dag`` and ``run_id`` only): whatever
    cannot be read is left out.

    Args:
        config_or_name: The pipeline config or its name.
        context: The Airflow context passed to the callback.
        event: ``failure``, ``rejected`` or ``promoted``.
        title: Headline; by default derived from the event and the task.
        summary: Short description; for failures by default a summary of ``context["exception"]``.
        details: Extra key/values to show.

    Returns:
        The alert.
    """
    pipeline = config_or_name if isinstance(config_or_name, str) else str(_attr(config_or_name, "name"))
    context = context if isinstance(context, Mapping) else {}
    extra: dict[str, Any] = {}
    dag_id = task_id = run_id = None
    try_number = None
    log_url = mlflow_url = None
    try:
        ti = context.get("ti") or context.get("task_instance")
        dag = context.get("dag")
        dag_id = _attr(ti, "dag_id") or _attr(dag, "dag_id")
        task_id = _attr(ti, "task_id")
        run_id = _attr(ti, "run_id") or context.get("run_id")
        try_number = _attr(ti, "try_number")
        map_index = _attr(ti, "map_index")
        if isinstance(map_index, int) and map_index >= 0:
            extra["map_index"] = map_index
        if context.get("reason"):
            extra["reason"] = str(context["reason"])
        if dag_id and run_id and task_id:
            log_url = task_log_url(dag_id, run_id, task_id, try_number, map_index)
        mlflow_url = _mlflow_url(pipeline, ti, extra)
    except Exception:  # an alert with fewer details beats no alert
        log.debug("Could not read every detail of the callback context", exc_info=True)

    if title is None:
        title = _default_title(event, dag_id, task_id, dag_level="reason" in context)
    if summary is None:
        summary = ""
        if event == "failure":
            try:
                summary = summarize_error(context.get("exception"))
            except Exception:
                log.debug("Could not summarise the exception", exc_info=True)
            if not summary:  # DAG-level callbacks get no exception: point at the failed task's log
                summary = (
                    f"task {task_id} failed; the error is in its log" if task_id else "the DAG run failed"
                )
    else:
        summary = _truncate(_redact(summary), 2000)
    return Alert(
        pipeline=pipeline,
        event=event,
        severity=SEVERITY.get(event, "error"),
        title=title,
        summary=summary,
        dag_id=dag_id,
        task_id=task_id,
        run_id=run_id,
        try_number=try_number if isinstance(try_number, int) else None,
        log_url=log_url,
        mlflow_url=mlflow_url,
        details={**extra, **dict(details or {})},
    )


def task_log_url(
    dag_id: str, run_id: str, task_id: str, try_number: int | None = None, map_index: int | None = None
) -> str:
    """Link to a task try's log in the Airflow 3 UI.

    The route is the one ``RuntimeTaskInstance.log_url`` builds in Airflow 3.3
    (``/dags/{dag_id}/runs/{run_id}/tasks/{task_id}[/mapped/{i}]?try_number=N``), whose default view is
    the log. The base is ``MLOPS_AIRFLOW_UI_URL`` when set, else Airflow's ``[api] base_url``, else
    ``http://127.0.0.1:8080``.
    """
    mapped = f"/mapped/{map_index}" if isinstance(map_index, int) and map_index >= 0 else ""
    query = f"?try_number={try_number}" if isinstance(try_number, int) and try_number > 0 else ""
    path = f"/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}/tasks/{quote(task_id, safe='')}"
    return f"{airflow_base_url()}{path}{mapped}{query}"


def dispatch(
    alert: Alert, routes: Sequence[AlertRoute], context: Mapping[str, Any] | None = None
) -> list[str]:
    """Deliver an alert to every route subscribed to its event; never raises.

    A route whose connection is not defined, or whose delivery fails, is logged (with the route) and the
    whole alert is written to the log at WARNING level, so that it is never lost; the other routes are still
    tried. With no subscribed route (the embedded default) the alert goes to the log only.

    Args:
        alert: The alert to send.
        routes: The pipeline's alert routes (``PipelineConfig.alerts``).
        context: The Airflow context, handed to the notifiers.

    Returns:
        The deliveries made, e.g. ``["slack:slack_mlops", "email:smtp_mlops"]``, with ``"log"`` when the
        alert was written to the log.
    """
    delivered: list[str] = []
    to_log = False
    context = context if context is not None else {}
    for route in routes:
        if alert.event not in route.events:
            continue
        name = f"{route.channel}:{route.conn_id}"
        try:
            connection = _get_connection(route.conn_id)
            if connection is None:
                log.warning(
                    "Alert route %s: connection '%s' is not defined (set AIRFLOW_CONN_%s or add it in "
                    "Airflow); writing the alert to the log instead",
                    name,
                    route.conn_id,
                    route.conn_id.upper(),
                )
                to_log = True
                continue
            _send(alert, route, connection, context)
        except Exception as exc:
            log.error("Alert route %s: delivery failed: %s: %s", name, type(exc).__name__, exc)
            log.debug("Alert route %s: traceback", name, exc_info=True)
            to_log = True
            continue
        log.info("Alert route %s: %s alert delivered", name, alert.event)
        delivered.append(name)
    if to_log or not delivered:
        log.warning("Alert for pipeline %s:\n%s", alert.pipeline, alert.text())
        delivered.append(LOG_DELIVERY)
    return delivered


def send_event(
    pipeline: PipelineConfig | str,
    routes: Sequence[AlertRoute],
    event: AlertEvent,
    title: str,
    summary: str,
    context: Mapping[str, Any] | None,
    details: Mapping[str, Any] | None = None,
) -> list[str]:
    """Alert about a non-failure event from an operator (gate ``rejected``, model ``promoted``); never raises.

    Args:
        pipeline: The pipeline config or its name.
        routes: The pipeline's alert routes.
        event: ``rejected`` (a warning) or ``promoted`` (info); ``failure`` works too.
        title: Headline, e.g. ``challenger v7 rejected by the gate``.
        summary: A few lines: the verdict's reasons, the versions.
        context: The running task's context (for the DAG, run, task and links); may be None.
        details: Extra key/values, e.g. metrics.

    Returns:
        The deliveries made (see :func:`dispatch`).
    """
    try:
        alert = alert_from_context(
            pipeline, context or {}, event=event, title=title, summary=summary, details=details
        )
        return dispatch(alert, routes, context)
    except Exception:
        log.exception("Could not send the %s alert of pipeline %s", event, pipeline)
        return []


def model_server_alert(config: PipelineConfig) -> Callable[[str], None]:
    """What the model server calls when a new model version cannot be loaded: a failure alert to the
    pipeline's routes (``mlops serve`` wires it into :func:`mlops.serving.app.run`)."""

    def alert(message: str) -> None:
        send_event(
            config.name,
            config.alerts,
            "failure",
            "model server could not load a new model version",
            message,
            None,
        )

    return alert


class FailureAlert:
    """Failure callback that alerts the pipeline's routes; for task-level and DAG-level ``on_failure_callback``.

    A plain callable (not a ``BaseNotifier``) on purpose: the message is rendered by :class:`Alert`, so no
    Jinja rendering happens, which also makes it work as a DAG-level callback under ``dag.test()``. It is
    built at every DAG parse, so construction only stores its arguments; it pickles and deep-copies (Airflow
    deep-copies ``default_args``).

    Args:
        pipeline: The pipeline's name.
        routes: The pipeline's alert routes (``PipelineConfig.alerts``).
        dag_level: Set for the DAG's own callback. A DAG run that failed because a task failed was already
            reported by that task's callback (with the exception); the DAG-level one then stays quiet and only
            speaks for failures no task reports (a run timeout, for example).
    """

    __slots__ = ("dag_level", "pipeline", "routes")

    def __init__(self, pipeline: str, routes: Sequence[AlertRoute] = (), *, dag_level: bool = False) -> None:
        self.pipeline = pipeline
        self.routes = tuple(routes)
        self.dag_level = dag_level

    @property
    def __name__(self) -> str:  # Airflow logs a callback by its __name__
        return f"FailureAlert({self.pipeline})"

    def __call__(self, context: Mapping[str, Any]) -> list[str]:
        """Build the alert from the callback context and dispatch it; never raises."""
        if self.dag_level and context.get("reason") == "task_failure":
            log.info("DAG run of %s failed at a task, whose own alert has gone out", self.pipeline)
            return []
        try:
            return dispatch(alert_from_context(self.pipeline, context), self.routes, context)
        except Exception:
            log.exception("Could not send the failure alert of pipeline %s", self.pipeline)
            return []

    def __getstate__(self) -> tuple[str, tuple[AlertRoute, ...], bool]:
        return self.pipeline, self.routes, self.dag_level

    def __setstate__(self, state: tuple[str, tuple[AlertRoute, ...], bool]) -> None:
        self.pipeline, self.routes, self.dag_level = state

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FailureAlert):
            return NotImplemented
        return (self.pipeline, self.routes, self.dag_level) == (other.pipeline, other.routes, other.dag_level)

    def __hash__(self) -> int:
        return hash((self.pipeline, len(self.routes)))

    def __repr__(self) -> str:
        routes = ", ".join(f"{r.channel}:{r.conn_id}" for r in self.routes)
        return f"FailureAlert(pipeline={self.pipeline!r}, routes=[{routes}])"


# Helpers ------------------------------------------------------------------------------------------------


def _attr(obj: Any, name: str) -> Any:
    try:
        return getattr(obj, name, None) if obj is not None else None
    except Exception:
        return None


def _default_title(event: str, dag_id: str | None, task_id: str | None, *, dag_level: bool) -> str:
    if event == "failure":
        if dag_level:
            where = f" at task {task_id}" if task_id else ""
            return f"DAG run of {dag_id or 'the pipeline'} failed{where}"
        return f"task {task_id} failed" if task_id else "run failed"
    if event == "rejected":
        return "challenger rejected by the gate"
    if event == "promoted":
        return "new champion promoted"
    return event


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)].rstrip() + "…"


def _short(value: Any, limit: int = 300) -> str:
    return _truncate(str(value), limit)


def _slack_escape(text: Any) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _redact(text: str) -> str:
    """Mask secrets Airflow knows of (connection passwords...) before a message leaves the task log."""
    try:
        from airflow.sdk._shared.secrets_masker import redact

        return str(redact(text))
    except Exception:  # the masker is an internal module: degrade to no masking rather than fail
        return text


def airflow_base_url() -> str:
    """Where people reach the Airflow UI (``MLOPS_AIRFLOW_UI_URL``, else the API server's base URL)."""
    if os.environ.get("MLOPS_AIRFLOW_UI_URL"):
        return airflow_ui_url()
    try:
        from airflow.sdk.configuration import conf

        base = conf.get("api", "base_url", fallback=None)
    except Exception:
        base = None
    return base.rstrip("/") if base else airflow_ui_url()


def _xcom(ti: Any, key: str) -> Any:
    for task_id in MLFLOW_TASKS:
        try:
            value = ti.xcom_pull(task_ids=task_id, key=key)
        except Exception:  # no supervisor (DAG-level callback), no such task...: no link
            value = None
        if value:
            return value
    return None


def _mlflow_url(pipeline: str, ti: Any, extra: dict[str, Any]) -> str | None:
    if ti is None or not hasattr(ti, "xcom_pull"):
        return None
    run_id = _xcom(ti, MLFLOW_RUN_KEY)
    if not run_id:
        return None
    extra["mlflow_run_id"] = str(run_id)
    experiment_id = _xcom(ti, MLFLOW_EXPERIMENT_KEY)
    base = mlflow_ui_url()
    if experiment_id:
        extra["mlflow_experiment_id"] = str(experiment_id)
        return f"{base}/#/experiments/{quote(str(experiment_id), safe='')}/runs/{quote(str(run_id), safe='')}"
    return f"{base}/#/experiments?experimentSearchFilter={quote(pipeline, safe='')}"


def _get_connection(conn_id: str) -> Any:
    """The Airflow connection, or None when no secrets backend (env ``AIRFLOW_CONN_*``, metadata DB...) has it."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


def _send(alert: Alert, route: AlertRoute, connection: Any, context: Mapping[str, Any]) -> None:
    # notify() directly, not __call__: the message is rendered already, and __call__'s Jinja rendering
    # fails for DAG-level callbacks under dag.test() ('SerializedDAG' has no get_template_env).
    if route.channel == "slack":
        from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

        SlackWebhookNotifier(slack_webhook_conn_id=route.conn_id, text=alert.text(slack=True)).notify(context)
    elif route.channel == "email":
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        SmtpNotifier(
            to=list(route.to),
            from_email=_from_email(connection),
            subject=alert.subject(),
            html_content=alert.html(),
            smtp_conn_id=route.conn_id,
        ).notify(context)
    else:  # unreachable with a validated config
        raise ValueError(f"unknown alert channel '{route.channel}'")


def _from_email(connection: Any) -> str | None:
    """The sender: the connection's ``from_email`` extra, else Airflow's ``[email] from_email``.

    Passed explicitly because SmtpNotifier otherwise re-renders its fields with Jinja to fill it in.
    """
    try:
        sender = (connection.extra_dejson or {}).get("from_email")
    except Exception:
        sender = None
    if sender:
        return str(sender)
    try:
        from airflow.sdk.configuration import conf

        return conf.get("email", "from_email", fallback=None) or None
    except Exception:
        return None
