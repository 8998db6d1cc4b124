"""The simulation's pure parts: settings, the two clocks, the stream, the config it serves, the summary and the
goals, the agreement parser, and the outputs; and its HTTP client on a scripted in-process transport (what is
retried, how often, what is raised) and its reading of ``/metrics``. The full replay through the model server is in ``tests/e2e/test_simulation_policies.py``."""

from __future__ import annotations

import csv
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from mlops.config import PipelineConfig, load_config
from mlops.tooling.simulation import (
    ATTEMPTS,
    BUFFERED_ROWS,
    CSV_COLUMNS,
    DRIFT,
    FLUSH_SECONDS,
    NEVER,
    PERIODIC,
    Clock,
    PolicyRun,
    PolicySummary,
    Replayer,
    SimulationError,
    SimulationResult,
    SimulationSettings,
    WindowResult,
    evaluate_goals,
    make_stream,
    metric_value,
    plain_decisions,
    plot,
    request_records,
    run_simulation,
    simulation_config,
    write_config,
    write_csv,
)

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demand() -> PipelineConfig:
    return load_config(REPO / "include" / "pipelines" / "demand_forecast.yaml")


def test_settings_problems_name_each_bad_option(tmp_path: Path) -> None:
    assert SimulationSettings(out=tmp_path).problems() == []
    bad = SimulationSettings(
        out=tmp_path, windows=5, onset=9, period=0, label_delay=-1, policies=("sometimes",)
    )
    problems = " ".join(bad.problems())
    for option in ("--onset", "--period", "--label-delay", "sometimes"):
        assert option in problems


def test_invalid_settings_stop_before_anything_runs(demand: PipelineConfig, tmp_path: Path) -> None:
    with pytest.raises(SimulationError, match="--onset"):
        run_simulation(demand, SimulationSettings(out=tmp_path / "out", windows=3, onset=7))
    assert not (tmp_path / "out").exists()


def test_clock_maps_simulated_days_to_the_real_times_of_the_windows() -> None:
    clock = Clock()
    real = datetime(2030, 5, 1, 12, tzinfo=UTC)
    for window in range(4):
        clock.record(window, real + timedelta(seconds=10 * window), real + timedelta(seconds=10 * window + 5))
    start, end = Clock.simulated(2)
    assert end - start == timedelta(days=1)
    assert clock.real_range(start, end) == (real + timedelta(seconds=20), real + timedelta(seconds=25))
    # The simulated range of windows 1-2 (what decide() asks for a streak) is windows 1-2's real range.
    assert clock.real_range(Clock.simulated(1)[0], Clock.simulated(2)[1]) == (
        real + timedelta(seconds=10),
        real + timedelta(seconds=25),
    )
    # A sliding range reaching back before window 0 is clamped to what was replayed.
    assert clock.real_range(start - timedelta(days=7), end)[0] == real
    assert clock.real_range(Clock.simulated(9)[0], Clock.simulated(9)[1]) is None


def test_stream_is_stationary_until_the_onset_then_shifted(demand: PipelineConfig, tmp_path: Path) -> None:
    settings = SimulationSettings(out=tmp_path, windows=4, onset=2, rows_per_window=400, initial_rows=500)
    stream = make_stream(demand, settings)
    assert len(stream.initial) == 500 and [len(w) for w in stream.windows] == [400] * 4
    prices = [w["price"].mean() for w in stream.windows]
    assert abs(prices[0] - prices[1]) < 0.1 * prices[0]
    assert min(prices[2:]) > 1.15 * max(prices[:2])  # feature drift 1.0: prices +30 %
    again = make_stream(demand, settings)
    assert again.windows[3].equals(stream.windows[3])  # the same stream for every policy


def test_stream_needs_a_generator(demand: PipelineConfig, tmp_path: Path) -> None:
    other = demand.model_copy(update={"name": "no_such_generator"})
    with pytest.raises(SimulationError, match="no data generator"):
        make_stream(other, SimulationSettings(out=tmp_path))


def test_request_records_leave_the_target_out_and_send_missing_values_as_null(
    demand: PipelineConfig, tmp_path: Path
) -> None:
    frame = make_stream(demand, SimulationSettings(out=tmp_path, windows=1, rows_per_window=300)).windows[0]
    frame.loc[0, "temperature_c"] = float("nan")
    records = request_records(demand, frame)
    assert len(records) == 300 and set(records[0]) == set(demand.feature_names)
    assert records[0]["temperature_c"] is None


def test_simulation_config_serves_on_its_port_flushes_often_and_deploys_directly(
    demand: PipelineConfig, tmp_path: Path
) -> None:
    canary = demand.model_copy(
        update={"deploy": demand.deploy.model_copy(update={"strategy": "canary", "server_url": "http://x:1"})}
    )
    config = simulation_config(canary, 8765)
    assert config.server_url == "http://127.0.0.1:8765"
    assert config.serving.inference_log.flush_seconds == FLUSH_SECONDS
    assert config.deploy.strategy == "direct" and not config.deploy.approval.required
    assert config.gate == demand.gate and config.monitoring == demand.monitoring  # the rest is the pipeline's
    # ``mlops serve`` in the other process reads the same config back.
    assert load_config(write_config(config, tmp_path)) == config


def test_plain_decisions_reads_each_columns_value_drift_test() -> None:
    snapshot = {
        "tests": [
            {
                "metric_config": {"params": {"type": "evidently:metric_v2:DriftedColumnsCount"}},
                "status": "SUCCESS",
            },
            {
                "metric_config": {"params": {"type": "evidently:metric_v2:ValueDrift", "column": "price"}},
                "status": "FAIL",
            },
            {
                "metric_config": {"params": {"type": "evidently:metric_v2:ValueDrift", "column": "store"}},
                "status": "SUCCESS",
            },
        ]
    }
    assert plain_decisions(snapshot) == {"price": True, "store": False}
    assert plain_decisions({}) == {}


def _window(
    policy: str, index: int, quality: float, decision: str = "ok", retrained: bool = False
) -> WindowResult:
    return WindowResult(
        window=index,
        policy=policy,
        drifted_stream=index >= 3,
        rows=100,
        labelled_rows=0,
        metric="rmse",
        quality=quality,
        drift_share=0.5 if index >= 3 else 0.0,
        drifted_features=["price"] if index >= 3 else [],
        top_feature="price",
        top_effect=0.4 if index >= 3 else 0.03,
        prediction_drift=0.2 if index >= 3 else 0.02,
        prediction_drifted=index >= 3,
        decision=decision,
        reasons=[],
        champion_version=1,
        retrained=retrained,
        gate="promoted" if retrained else "",
        new_version=2 if retrained else None,
    )


def _result(demand: PipelineConfig, tmp_path: Path) -> SimulationResult:
    never = [_window(NEVER, i, q, "warn" if i >= 3 else "ok") for i, q in enumerate([10, 10, 10, 20, 20, 20])]
    periodic = [
        _window(PERIODIC, i, q, "warn" if i >= 3 else "ok", retrained=i % 2 == 1)
        for i, q in enumerate([10, 11, 10, 20, 18, 16])
    ]
    drift = [
        _window(DRIFT, i, q, d, retrained=d == "retrain")
        for i, (q, d) in enumerate(
            [(10, "ok"), (10, "ok"), (10, "ok"), (20, "warn"), (20, "retrain"), (11, "ok")]
        )
    ]
    runs = {
        name: PolicyRun(name, windows, 1.0, 1, {"predict": 0.5})
        for name, windows in ((NEVER, never), (PERIODIC, periodic), (DRIFT, drift))
    }
    settings = SimulationSettings(out=tmp_path, windows=6, onset=3, period=2)
    return SimulationResult(demand, settings, runs, 3.0, datetime(2030, 1, 1, tzinfo=UTC))


def test_summary_per_policy(demand: PipelineConfig, tmp_path: Path) -> None:
    summaries = _result(demand, tmp_path).summaries
    drift = summaries[DRIFT]
    assert (drift.quality_before, drift.quality_after) == (10, 17)
    assert (drift.retrains, drift.promoted, drift.first_warn, drift.first_retrain, drift.false_alarms) == (
        1,
        1,
        3,
        4,
        0,
    )
    assert summaries[PERIODIC].retrains == 3 and summaries[NEVER].retrains == 0


def test_goals_are_judged_on_the_measures(demand: PipelineConfig, tmp_path: Path) -> None:
    result = _result(demand, tmp_path)
    goals = result.goals
    assert [g.met for g in goals] == [False, True, True, True]  # onset 3 < the 20 undrifted windows asked for
    summaries = result.summaries
    late = PolicySummary(**{**vars(summaries[DRIFT]), "first_retrain": 6, "false_alarms": 1, "retrains": 2})
    settings = SimulationSettings(out=tmp_path, onset=3)
    checked = evaluate_goals({**summaries, DRIFT: late}, settings, lower_is_better=True)
    assert [g.met for g in checked] == [False, False, True, False]
    assert evaluate_goals({NEVER: summaries[NEVER]}, settings, lower_is_better=True) == []


def test_outputs_csv_markdown_and_plot(demand: PipelineConfig, tmp_path: Path) -> None:
    result = _result(demand, tmp_path)
    for window in result.runs[DRIFT].windows:  # the prediction's threshold, raised to the noise floor
        window.prediction_threshold = 0.13
    with write_csv(result, tmp_path / "simulation.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == list(CSV_COLUMNS) and len(rows) == 18
    assert {r["policy"] for r in rows} == {NEVER, PERIODIC, DRIFT}
    assert [r["window"] for r in rows if r["policy"] == DRIFT and r["retrained"] == "1"] == ["4"]
    assert {r["prediction_threshold"] for r in rows if r["policy"] == DRIFT} == {"0.13"}
    assert {r["prediction_threshold"] for r in rows if r["policy"] == NEVER} == {""}
    text = result.summary_markdown()
    assert "| drift | 10.000 | 17.000 |" in text and "feature drift 1**" in text and "## Goals" in text
    assert "raised to the noise floor of the window's size" in text
    png = plot(result, tmp_path / "simulation.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# The replay's HTTP client, on an in-process transport --------------------------------------------------------
class ScriptedServer:
    """Answers ``busy`` 503s (``Retry-After: 0``) before each 200 (``/predict``) or 202 (``/feedback``); with
    ``refuse``, refuses that many connections first."""

    def __init__(self, busy: int = 0, refuse: int = 0) -> None:
        self.busy, self.refuse, self.calls, self.bodies = busy, refuse, 0, []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.calls += 1
            calls = self.calls
        if calls <= self.refuse:
            raise httpx.ConnectError("connection refused", request=request)
        self.bodies.append(json.loads(request.content))
        if (calls - self.refuse) % (self.busy + 1):
            return httpx.Response(503, content=b"busy", headers={"Retry-After": "0"})
        if request.url.path == "/feedback":
            return httpx.Response(202, json={})
        return httpx.Response(200, json={"predictions": [1.5], "model_version": 1})

    def replayer(self) -> Replayer:
        return Replayer("http://server", concurrency=1, transport=httpx.MockTransport(self))


def test_replayer_waits_out_503s_and_keeps_the_order() -> None:
    server = ScriptedServer(busy=ATTEMPTS - 1)
    with server.replayer() as replayer:
        answers = replayer.predict([{"x": 1}, {"x": 2}], ["a", "b"])
        replayer.feedback(["a", "b"], [1, 2])
    assert [a["predictions"] for a in answers] == [[1.5], [1.5]]
    assert server.calls == 4 * ATTEMPTS  # each request answered on its last attempt
    assert server.bodies[-1] == {"request_id": "b", "label": 2}


def test_replayer_reports_a_server_that_stays_busy() -> None:
    server = ScriptedServer(busy=ATTEMPTS)
    with server.replayer() as replayer, pytest.raises(SimulationError, match="a answered 503: b'busy'"):
        replayer.predict([{"x": 1}], ["a"])
    assert server.calls == ATTEMPTS


def test_replayer_retries_a_refused_connection_then_raises_its_error() -> None:
    with ScriptedServer(refuse=1).replayer() as replayer:
        assert replayer.predict([{"x": 1}], ["a"])[0]["model_version"] == 1
    server = ScriptedServer(refuse=ATTEMPTS)
    with server.replayer() as replayer, pytest.raises(httpx.ConnectError):
        replayer.feedback(["a"], [1])
    assert server.calls == ATTEMPTS


def test_replayer_refuses_nan() -> None:
    with ScriptedServer().replayer() as replayer, pytest.raises(ValueError):
        replayer.predict([{"x": float("nan")}], ["a"])


def test_metric_value_reads_the_prometheus_text() -> None:
    text = (
        "# HELP mlops_serving_inference_log_buffered_rows Rows of the inference log waiting to be written.\n"
        "# TYPE mlops_serving_inference_log_buffered_rows gauge\n"
        "mlops_serving_inference_log_buffered_rows 0.0\n"
        "# TYPE mlops_serving_inference_log_buffered_rows_peak gauge\n"
        "mlops_serving_inference_log_buffered_rows_peak 12.0\n"
        'mlops_serving_errors_total{kind="input"} 2.0\n'
    )
    assert metric_value(text, BUFFERED_ROWS) == 0.0
    assert metric_value(text, BUFFERED_ROWS + "_peak") == 12.0
    assert metric_value(text, "mlops_serving_errors_total") == 2.0  # untyped: a family of its own name
    assert metric_value("# nothing here\n", BUFFERED_ROWS) is None
