"""The Models page's core (what it shows), its HTML and the plugin's registration, on a tiny MLflow store."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]
PIPELINE = "breast_cancer"


def _links(kind: str, pipeline: str, key: str) -> str:
    return f"/mlops/{kind}/{pipeline}/{key}"


def _version(client: Any, experiment_id: str, tags: dict[str, str], verdict_md: str | None = None) -> int:
    run = client.create_run(experiment_id)
    if verdict_md is not None:
        client.log_text(run.info.run_id, verdict_md, "gate/verdict.md")
    client.set_terminated(run.info.run_id)
    version = client.create_model_version(
        PIPELINE, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id, tags=tags
    )
    return int(version.version)


@pytest.fixture
def store(mlops_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Champion v1, rejected challenger v2, one monitoring run; pipelines: breast_cancer and a broken file."""
    from mlops import registry

    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    shutil.copy(REPO / "include" / "pipelines" / f"{PIPELINE}.yaml", pipelines)
    (pipelines / "broken.yaml").write_text("name: broken\ntask: clustering\n")
    monkeypatch.setenv("MLOPS_PIPELINES_DIR", str(pipelines))
    client = registry.client()
    training = client.create_experiment(PIPELINE)
    client.create_registered_model(PIPELINE)
    v1 = _version(
        client,
        training,
        {
            "mlops.semver": "1.0.0",
            "gate.verdict": "passed",
            "gate.evaluated_at": "2026-11-01T00:00:00+00:00",
            "gate.reasons": "roc_auc 0.99 meets 0.9",
            "deploy.status": "champion",
        },
    )
    v2 = _version(
        client,
        training,
        {
            "mlops.semver": "2.0.0",
            "gate.verdict": "rejected",
            "gate.evaluated_at": "2026-11-02T00:00:00+00:00",
            "gate.reasons": "roc_auc 0.5 below the minimum 0.9 | recall <script>alert(1)</script> 0.0",
            "gate.primary_metric": "roc_auc",
            "gate.challenger.roc_auc": "0.5",
            "gate.champion_version": "1",
        },
        verdict_md="# Gate verdict: REJECTED\n",
    )
    client.set_registered_model_alias(PIPELINE, registry.CHAMPION, v1)
    client.set_registered_model_alias(PIPELINE, registry.CHALLENGER, v2)
    monitoring = client.create_experiment(f"{PIPELINE}-monitoring")
    run = client.create_run(
        monitoring,
        tags={
            "mlops.monitoring.decision": "warn",
            "mlops.monitoring.reasons": "drift in some features | drifted window 1 of the 2",
            "mlops.monitoring.window_start": "2026-11-01T00:00:00+00:00",
            "mlops.monitoring.window_end": "2026-11-02T00:00:00+00:00",
            "mlops.model_version": "1",
        },
    )
    client.log_text(run.info.run_id, "<html>drift</html>", "report.html")
    client.log_text(run.info.run_id, "{}", "summary.json")
    other = client.create_run(training)
    client.log_text(other.info.run_id, "<html>secret</html>", "report.html")
    return {"monitoring_run": run.info.run_id, "other_run": other.info.run_id, "pipelines": pipelines}


def test_overview_shows_champion_challenger_gate_and_monitoring(store: dict[str, Any]) -> None:
    from mlops.ui.models import models_overview

    overview = models_overview()
    assert [p.name for p in overview.pipelines] == [PIPELINE]
    assert list(overview.config_errors) == [str(store["pipelines"] / "broken.yaml")]
    (pipeline,) = overview.pipelines
    assert pipeline.error is None and pipeline.versions == 2
    assert (pipeline.champion.version, pipeline.champion.semver, pipeline.champion.status) == (
        1,
        "1.0.0",
        "champion",
    )
    assert (pipeline.challenger.version, pipeline.challenger.status) == (2, "rejected")
    assert (
        "/#/models/breast_cancer/versions/2?workflowType=machine_learning" in pipeline.challenger.mlflow_url
    )
    gate = pipeline.gate
    assert (gate.version, gate.verdict, gate.champion_version, gate.challenger_value) == (
        2,
        "rejected",
        1,
        "0.5",
    )
    assert gate.reasons[0] == "roc_auc 0.5 below the minimum 0.9" and len(gate.reasons) == 2
    monitoring = pipeline.monitoring
    assert monitoring.decision == "warn" and monitoring.model_version == 1
    assert monitoring.reasons == ["drift in some features", "drifted window 1 of the 2"]
    assert monitoring.window_end == "2026-11-02T00:00:00+00:00" and monitoring.report_available
    assert f"/runs/{store['monitoring_run']}?workflowType=machine_learning" in monitoring.mlflow_url
    assert overview.to_dict()["pipelines"][0]["gate"]["verdict"] == "rejected"  # JSON-able


def test_a_pipeline_without_models_shows_empty_and_creates_nothing(mlops_home: Path) -> None:
    from mlops import registry
    from mlops.ui.models import models_overview

    overview = models_overview(REPO / "include" / "pipelines")
    assert {p.name for p in overview.pipelines} >= {PIPELINE}
    assert all(p.champion is None and p.gate is None and p.monitoring is None for p in overview.pipelines)
    assert registry.client().get_experiment_by_name(f"{PIPELINE}-monitoring") is None


def test_page_escapes_what_it_shows(store: dict[str, Any]) -> None:
    from mlops.ui.models import models_overview
    from mlops.ui.render import render_page

    html = render_page(models_overview(), _links, "<b>eve</b>")
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;eve&lt;/b&gt;" in html
    assert 'data-pipeline="breast_cancer"' in html and "/mlops/gate/breast_cancer/2" in html
    assert f"/mlops/monitoring/breast_cancer/{store['monitoring_run']}" in html


def test_reports_are_served_only_for_the_pipeline_they_belong_to(
    store: dict[str, Any], tmp_path: Path
) -> None:
    from mlops.ui.models import ReportNotFound, gate_report, monitoring_artifact

    assert gate_report(PIPELINE, 2, tmp_path / "a").read_text().startswith("# Gate verdict: REJECTED")
    report = monitoring_artifact(PIPELINE, store["monitoring_run"], "report.html", tmp_path / "b")
    assert report.read_text() == "<html>drift</html>"
    with pytest.raises(ReportNotFound, match="not a monitoring run"):
        monitoring_artifact(PIPELINE, store["other_run"], "report.html", tmp_path / "c")
    with pytest.raises(ReportNotFound):
        monitoring_artifact(PIPELINE, store["monitoring_run"], "../../mlflow.db", tmp_path / "d")
    with pytest.raises(ReportNotFound, match="no pipeline"):
        gate_report("demand_forecast", 1, tmp_path / "e")
    with pytest.raises(ReportNotFound, match="no gate report"):
        gate_report(PIPELINE, 1, tmp_path / "f")  # v1 was tagged but has no verdict.md


def test_plugin_is_registered_by_entry_point() -> None:
    from importlib.metadata import entry_points

    from airflow.plugins_manager import is_valid_plugin

    (entry,) = [e for e in entry_points(group="airflow.plugins") if e.name == "mlops"]
    plugin = entry.load()
    assert is_valid_plugin(plugin)
    (view,) = plugin.external_views
    assert view["name"] == "Models" and view["href"] == "/mlops/" and view["url_route"] == "models"
    (app,) = plugin().fastapi_apps
    assert app["url_prefix"] == "/mlops"
    assert {route.path for route in app["app"].routes} >= {"/", "/api/models"}


def test_report_not_found_names_what_is_missing_and_no_server_path(
    store: dict[str, Any], mlops_home: Path
) -> None:
    """A 404 of the report routes says which pipeline, version, run or report is missing; it used to end with
    MLflow's message (artifact URI, the temporary download folder) or the configs' folder."""
    from fastapi.testclient import TestClient

    from mlops.ui.app import create_app
    from mlops.ui.auth import airflow_user, page_user

    app = create_app()
    app.dependency_overrides[page_user] = app.dependency_overrides[airflow_user] = lambda: object()
    client = TestClient(app, raise_server_exceptions=False)
    answers = {
        f"/reports/{PIPELINE}/gate/1": f"'{PIPELINE}' v1 has no gate report (gate/verdict.md)",
        f"/reports/{PIPELINE}/gate/99": f"'{PIPELINE}' v99 has no gate report (gate/verdict.md)",
        "/reports/demand_forecast/gate/1": "no pipeline 'demand_forecast'",
        f"/reports/{PIPELINE}/monitoring/{store['other_run']}/report.html": (
            f"run {store['other_run']} is not a monitoring run of '{PIPELINE}'"
        ),
        f"/reports/{PIPELINE}/monitoring/{'0' * 32}/summary.json": (
            f"monitoring run {'0' * 32} of '{PIPELINE}' has no summary.json"
        ),
        f"/reports/{PIPELINE}/monitoring/{store['monitoring_run']}/model.pkl": (
            f"no monitoring artifact 'model.pkl' of run '{store['monitoring_run']}' "
            "(one of report.html, summary.json)"
        ),
    }
    for path, detail in answers.items():
        response = client.get(path)
        assert response.status_code == 404, (path, response.text)
        assert response.json() == {"detail": detail}
        for secret in (str(store["pipelines"]), str(mlops_home), "mlops-ui-", "/tmp", "file:", "mlruns"):
            assert secret not in response.text, (path, response.text)
    assert client.get(f"/reports/{PIPELINE}/gate/2").status_code == 200
