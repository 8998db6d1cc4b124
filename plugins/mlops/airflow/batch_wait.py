"""``wait_for_batch``: the head of the training DAG (``data.wait``, on by default).

A scheduled run may start before its batch lands (a daily cron, a delivery at no fixed hour; or the run Airflow
creates at once when a person unpauses the DAG). The task looks once; if the batch is not there, it defers to
the triggerer (:func:`mlops.airflow.triggers.batch_arrival_trigger`: the standard provider's ``FileTrigger`` for
a local file, :class:`~mlops.airflow.triggers.S3BatchTrigger` for ``s3://``), holding no worker slot, and
resumes when the batch lands, handing its URI to ``ingest``. Past ``data.wait.timeout_hours`` the run ends as
"no data": the task and everything after it are skipped (the run succeeds, nothing was trained) and a
``data_warning`` alert says where it looked. That is a warning, not a failure: a day without a delivery is not
a broken pipeline.

A manual run does not wait: the person who triggered it named the batch, so a missing one fails at once,
without retries, saying where it looked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from mlops.airflow.operators import FailFast, run_params

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops.config import PipelineConfig

__all__ = ["WaitForBatchOperator"]


class WaitForBatchOperator(FailFast, BaseOperator):
    """Wait until the run's batch exists, then return its URI (``ingest`` takes it as its ``data_uri``).

    The batch: the run's ``data_uri`` (a retraining request's, or the config's ``data.source``) with ``{ds}``
    the run's date, resolved as ``ingest`` resolves it. Past the timeout the run ends as "no data" (skipped,
    with a ``data_warning`` alert); a manual run whose batch is missing fails at once, without retries.

    Args:
        config: The pipeline (its ``data.wait`` sets the timeout and how often to look).
        data_uri: The batch, templated (default: the run's ``params.data_uri``).
    """

    ui_color = "#ede7f6"
    template_fields = ("data_uri",)

    def __init__(
        self, *, config: PipelineConfig, data_uri: str = "{{ params.data_uri }}", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.data_uri = data_uri

    def batch_uri(self, context: Context) -> str:
        """The URI this run waits for, checked against the pipeline's landing roots before anything looks at it
        (a URI outside them fails at once, without retries: nothing tells whether such a file exists)."""
        from mlops.data.batches import batch_source

        when = context.get("logical_date") or context["dag_run"].run_after
        requested = run_params(context).get("data_uri") if context.get("triggering_asset_events") else None
        return batch_source(self.config, requested or self.data_uri or None, when)

    def execute(self, context: Context) -> str:
        from datetime import timedelta

        from mlops.airflow.triggers import batch_arrival_trigger
        from mlops.data.storage import exists

        uri = self.batch_uri(context)
        if exists(uri):
            self.log.info("Batch %s is there", uri)
            return uri
        wait = self.config.data.wait
        if wait is None:
            raise AirflowFailException(
                f"no batch at {uri}, and pipeline '{self.config.name}' sets no data.wait to wait for it"
            )
        if _run_type(context) == "manual":
            raise AirflowFailException(
                f"no batch at {uri}: a manual run does not wait for its batch. Put the batch there (or give "
                f"the form another data_uri) and trigger again; scheduled runs wait up to {_span(wait.timeout_hours)}"
            )
        self.log.info(
            "No batch at %s yet: waiting in the triggerer for up to %s", uri, _span(wait.timeout_hours)
        )
        self.defer(
            trigger=batch_arrival_trigger(uri, wait.poke_seconds),
            method_name="execute_complete",
            kwargs={"uri": uri},
            timeout=timedelta(hours=wait.timeout_hours),
        )

    def execute_complete(self, context: Context, event: Any = None, uri: str = "") -> str:
        """Resume when the trigger saw the batch: hand its URI on."""
        self.log.info("Batch %s arrived", uri)
        return uri

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """As Airflow resumes a deferred task, but a deferral that timed out fails without retries, saying
        where the task looked and for how long."""
        from airflow.sdk.exceptions import TaskDeferralTimeout

        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except TaskDeferralTimeout:
            from mlops.airflow.alerts import send_event

            hours = self.config.data.wait.timeout_hours if self.config.data.wait else 0.0
            uri = self.batch_uri(context)
            message = (
                f"no data: no batch at {uri} after {_span(hours)} (data.wait.timeout_hours of pipeline "
                f"'{self.config.name}'), so this run trains nothing. Deliver it and clear this task, or trigger "
                "a run with another data_uri"
            )
            self.log.warning("%s", message)
            send_event(
                self.config,
                self.config.alerts,
                "data_warning",
                f"no batch for {self.config.name} after {_span(hours)}: nothing trained",
                message,
                context,
            )
            raise AirflowSkipException(message) from None


def _run_type(context: Context) -> str:
    """``manual``, ``scheduled``, ``asset_triggered``, ... (empty when the context has no run)."""
    run_type = getattr(context.get("dag_run"), "run_type", None)
    return str(getattr(run_type, "value", run_type) or "")


def _span(hours: float) -> str:
    """``6 h``, ``1.5 h``, ``30 min``: a wait's length as people say it."""
    return f"{hours:g} h" if hours >= 1 else f"{hours * 60:g} min"
