"""The config sections of getting a model to users: the smoke test, canary, approval, deploy and serving."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mlops.config.base import Strict as _Strict


class SmokeTest(_Strict):
    """Load the challenger in a separate process and predict before it may serve (TFX's InfraValidator idea).

    A model that crashes the interpreter, hangs or eats memory cannot hurt the `deploy` task, which only
    reads the verdict. It runs with every strategy, before any canary or shadow phase. A failure tags the
    version `deploy.status: rejected` and fails the `deploy` task without retries; the champion is
    untouched. The steps: [The smoke test](#the-smoke-test).
    """

    enabled: bool = Field(default=True, description="`false` skips the smoke test (not recommended).")
    sample_rows: int = Field(
        default=100,
        ge=1,
        description="Holdout rows predicted in the one timed call (the whole holdout if it is smaller; "
        "always the same rows).",
        examples=[200],
    )
    latency_budget_ms: float = Field(
        default=1000.0,
        gt=0,
        description="Largest time for that call, in milliseconds. Loading and the one-row warm-up do not count.",
        examples=[500],
    )
    timeout_seconds: float = Field(
        default=180.0,
        gt=0,
        description="Largest time for the whole process (start, load and predict); past it the process is "
        "killed and the test fails.",
        examples=[120],
    )


class Canary(_Strict):
    """Guard rails of a canary (or shadow) phase, read from the model server's live statistics.

    Ignored with `strategy: direct`. Once the challenger has seen `min_requests` requests, it is promoted
    unless its error rate, p99 latency or prediction shift is above its limit. How a phase runs and how its
    reasons read: [Canary and shadow phases](#canary-and-shadow-phases).
    """

    traffic_share: float = Field(
        default=0.1,
        gt=0.0,
        lt=1.0,
        description="Share of the live requests the server routes to the challenger (`canary` only).",
        examples=[0.05],
    )
    min_requests: int = Field(
        default=100,
        ge=1,
        description="Requests the challenger must have seen before the phase is decided. The decision falls "
        "as soon as it has them, so a phase can end well before `max_duration_seconds`.",
        examples=[500],
    )
    max_duration_seconds: float = Field(
        default=600.0,
        gt=0,
        description="Deadline: a challenger that has not seen `min_requests` by then (or that the server "
        "never reported as its canary) is rolled back.",
        examples=[1800],
    )
    max_error_rate: float = Field(
        default=0.01,
        ge=0.0,
        le=1.0,
        description="Largest share of the challenger's requests that ended in an error.",
    )
    max_p99_latency_ms: float = Field(
        default=250.0,
        gt=0,
        description="Largest 99th-percentile latency of the challenger, in milliseconds.",
        examples=[200],
    )
    max_prediction_shift: float = Field(
        default=0.2,
        ge=0.0,
        description="Largest distance between challenger and champion predictions. Classification: the total "
        "variation distance between the shares of predicted classes (0: the same class mix, 1: no class in "
        "common; 10 % against 25 % predicted churn is 0.15). Regression: the shift of the mean prediction in "
        "standard deviations of the champion's predictions. Not checked while either side has no "
        "predictions.",
        examples=[0.1],
    )


class Approval(_Strict):
    """A person approves (or rejects) a challenger that passed the gate before it is deployed.

    With `required: true` the training DAG gets a task `approve` (Airflow's human-in-the-loop
    `ApprovalOperator`) after `gate`: it sends the `approval` alert with a link and waits for a person to
    choose *Approve* (runs `deploy`) or *Reject* (skips it) in the Airflow UI (*Browse → Required Actions*).
    Who answered, and when, is audited on the version. Details:
    [governance.md](governance.md#human-approval).
    """

    required: bool = Field(
        default=False,
        description="Ask a person before deploying; `false`: no `approve` task, the DAG is unchanged.",
    )
    timeout_minutes: float = Field(
        default=1440.0,
        gt=0,
        description="How long to wait; no answer by then counts as a rejection.",
        examples=[480],
    )
    assigned_users: list[str] = Field(
        default=[],
        description="Airflow user names who may answer (default: anyone allowed on the DAG).",
        examples=[["alice"]],
    )


class Deploy(_Strict):
    """How the `deploy` task turns a challenger that passed the gate into the champion.

    First the [smoke test](#deploysmoke_test) (unless disabled), then promotion at once or after a canary or
    shadow phase. Promotion is a compare-and-set of alias `champion`: it fails (`failure` alert, nothing
    changed) if the champion moved since the gate compared against it; it sends the `promoted` alert and
    asks the model server to reload its aliases. A failed smoke test or a rolled-back phase fails the
    `deploy` task at once, without retries; the champion serves on. Every step is recorded on the versions
    (`mlops history <name>`). The whole story: [How a model is deployed](#how-a-model-is-deployed).
    """

    strategy: Literal["direct", "canary", "shadow"] = Field(
        default="direct",
        description="`direct`: promote at once. `canary`: the model server sends `canary.traffic_share` of "
        "the live requests to the challenger, which is promoted only if its live statistics stay within the "
        "guard rails of `canary`. `shadow`: the same guard rails, but the champion keeps answering every "
        "request while the challenger scores copies no caller sees. Canary and shadow need the pipeline's "
        "model server running (`mlops serve <name>`); without it they roll back after "
        "`canary.max_duration_seconds`.",
        examples=["canary"],
    )
    approval: Approval = Field(
        default=Approval(),
        description="Optional human approval between the gate and deployment.",
        examples=[{"required": True, "timeout_minutes": 480, "assigned_users": ["alice"]}],
    )
    smoke_test: SmokeTest = Field(
        default=SmokeTest(),
        description="The smoke test every challenger passes before it may serve.",
        examples=[{"sample_rows": 200, "latency_budget_ms": 500, "timeout_seconds": 120}],
    )
    canary: Canary = Field(
        default=Canary(),
        description="Guard rails of a `canary` or `shadow` phase.",
        examples=[
            {
                "traffic_share": 0.05,
                "min_requests": 500,
                "max_duration_seconds": 1800,
                "max_error_rate": 0.01,
                "max_p99_latency_ms": 200,
                "max_prediction_shift": 0.1,
            }
        ],
    )
    server_url: str | None = Field(
        default=None,
        description="Base URL where the `deploy` task (and a rollback) reaches the pipeline's model server: "
        "`GET /canary` during a phase, `POST /admin/reload` after every alias change (best effort: an "
        "unreachable server is only logged, it picks the change up at its next poll). null: "
        "`http://<serving.host>:<serving.port>`; a trailing `/` is dropped. Set it when the task cannot "
        "reach the server there (another machine, a server on `0.0.0.0`, `mlops serve --host/--port`).",
        examples=["http://churn-model.internal:8101"],
    )


class InferenceLogSettings(_Strict):
    """The model server's log of the predictions it serves (and of feedback labels sent later), in Parquet."""

    uri: str | None = Field(
        default=None,
        description="Folder or `s3://` prefix the log is written to; null: `<store>/<name>/inference`.",
        examples=["s3://acme-ml-logs/churn/inference"],
    )
    flush_rows: int = Field(
        default=1000, ge=1, description="Buffered rows are written as soon as there are this many."
    )
    flush_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Buffered rows are written at the latest this many seconds after buffering.",
    )
    max_buffered_rows: int = Field(
        default=100_000,
        ge=1,
        description="Most unwritten rows kept in memory; past this, requests get 503 (with `Retry-After`) "
        "instead of being served unlogged.",
    )
    journal: bool = Field(
        default=True,
        description="Answer a request only once its rows are durable in a local journal (one `fsync` per "
        "group of requests), replayed at the next start after a crash. Off: a crash loses the rows buffered.",
    )
    journal_dir: str | None = Field(
        default=None,
        description="Local folder of the journal (relative: under `MLOPS_HOME`); null: "
        "`<MLOPS_HOME>/journal/<name>`. Keep it on a persistent volume.",
    )


class Serving(_Strict):
    """The pipeline's model server (`mlops serve <name>`): serves the champion and logs what it serves.

    It follows the model's aliases (champion, canary). Every field is optional. See [serving.md](serving.md).
    """

    host: str = Field(
        default="127.0.0.1",
        description="Address the server listens on (`mlops serve --host` overrides it). With `port` it makes "
        "the default `deploy.server_url`.",
        examples=["0.0.0.0"],
    )
    port: int = Field(
        default=8000,
        ge=1,
        le=65535,
        description="Port the server listens on (`mlops serve --port` overrides it).",
        examples=[8101],
    )
    poll_interval_seconds: float = Field(
        default=10.0, gt=0, description="How often the server checks the model's aliases, in seconds."
    )
    max_batch_rows: int = Field(
        default=1000, ge=1, description="Largest batch one request may send, in rows.", examples=[500]
    )
    max_body_bytes: int = Field(
        default=2_000_000, ge=1024, description="Largest request body, in bytes.", examples=[1000000]
    )
    batch_wait_ms: float = Field(
        default=2.0,
        ge=0,
        description="How long the server gathers concurrent requests into one prediction, in milliseconds.",
    )
    out_of_range: Literal["reject", "flag", "off"] = Field(
        default="flag",
        description="Inputs outside `expectations.columns` bounds (`min`, `max`, `allowed`): `reject` (422), "
        "`flag` (answered, marked in the response, the log and `/metrics`) or `off`.",
    )
    answered_ids: int = Field(
        default=1_000_000, ge=1, description="Recent request ids kept for feedback (about 200 bytes each)."
    )
    inference_log: InferenceLogSettings = Field(
        default=InferenceLogSettings(),
        description="Where and how the served predictions are logged.",
        examples=[{"uri": "s3://acme-ml-logs/churn/inference", "flush_rows": 1000, "flush_seconds": 5}],
    )
