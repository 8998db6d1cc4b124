"""The Models page's version logic on a tiny MLflow store: the pending challenger after a promotion, links only to
targets that exist, the metric chart (mlops.ui.chart), and the experiment kind our experiments get."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]
PIPELINE = "breast_cancer"


def _links(kind: str, pipeline: str, key: str) -> str:
    return f"/mlops/{kind}/{pipeline}/{key}"


@pytest.fixture
def pipelines(mlops_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "pipelines"
    folder.mkdir()
    shutil.copy(REPO / "include" / "pipelines" / f"{PIPELINE}.yaml", folder)
    monkeypatch.setenv("MLOPS_PIPELINES_DIR", str(folder))
    return folder


def _version(client: Any, experiment_id: str, tags: dict[str, str], gate_report: bool = False) -> int:
    run = client.create_run(experiment_id)
    if gate_report:
        client.log_text(run.info.run_id, "# Gate verdict: PASSED\n", "gate/verdict.md")
    version = client.create_model_version(
        PIPELINE, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id, tags=tags
    )
    return int(version.version)


def _gated(verdict: str, roc_auc: str, at: str) -> dict[str, str]:
    return {
        "gate.verdict": verdict,
        "gate.primary_metric": "roc_auc",
        "gate.challenger.roc_auc": roc_auc,
        "gate.evaluated_at": at,
    }


def _page(overview: Any) -> str:
    from mlops.ui.render import render_page

    return render_page(overview, _links, "ann")


def _cell(html: str, role: str) -> str:
    match = re.search(rf'<div class="cell" data-role="{role}">(.*?)</div></div>', html, re.S)
    assert match, role
    return match.group(1)


def test_after_a_promotion_the_challenger_is_none_pending_not_the_champion(pipelines: Path) -> None:
    """Registration points ``challenger`` at each new version and promotion leaves it there: the card used to
    show the champion again ("v2 · champion")."""
    from mlops import registry
    from mlops.ui.models import models_overview

    client = registry.client()
    experiment = client.create_experiment(PIPELINE)
    client.create_registered_model(PIPELINE)
    v1 = _version(client, experiment, _gated("passed", "0.97", "2026-11-01"), gate_report=True)
    client.set_registered_model_alias(PIPELINE, registry.CHAMPION, v1)
    v2 = _version(client, experiment, _gated("passed", "0.98", "2026-11-02"), gate_report=True)
    client.set_registered_model_alias(PIPELINE, registry.CHALLENGER, v2)
    registry.promote(PIPELINE, v2, v1, audit={"reason": "gate passed"})

    (pipeline,) = models_overview().pipelines
    assert pipeline.champion.version == 2 and pipeline.challenger is None
    html = _page(models_overview())
    assert "none pending" in _cell(html, "challenger") and "v2" not in _cell(html, "challenger")

    # A newer candidate refused by the gate is the pending one, with its verdict; v1 (retired) never is.
    v3 = _version(client, experiment, _gated("rejected", "0.61", "2026-11-03"))
    client.set_registered_model_alias(PIPELINE, registry.CHALLENGER, v3)
    (pipeline,) = models_overview().pipelines
    assert (pipeline.challenger.version, pipeline.challenger.gate_verdict) == (3, "rejected")
    cell = _cell(_page(models_overview()), "challenger")
    assert "v3" in cell and "rejected" in cell


def test_links_are_rendered_only_where_their_target_exists(pipelines: Path) -> None:
    from mlops import registry
    from mlops.ui.models import models_overview

    # No registered model: no link to MLflow's "Page Not Found", a sentence instead.
    html = _page(models_overview())
    assert "MLflow registered model: no version yet" in html
    assert "/#/models/" not in html and "Gate report" not in html and "summary.json" not in html

    # A gated version without gate/verdict.md, and a monitoring run with a report but no summary.json.
    client = registry.client()
    experiment = client.create_experiment(PIPELINE)
    client.create_registered_model(PIPELINE)
    _version(client, experiment, _gated("passed", "0.97", "2026-11-01"))
    monitoring = client.create_experiment(f"{PIPELINE}-monitoring")
    run = client.create_run(monitoring, tags={"mlops.monitoring.decision": "ok"})
    client.log_text(run.info.run_id, "<html></html>", "report.html")
    overview = models_overview()
    (pipeline,) = overview.pipelines
    assert pipeline.registered_model_url and pipeline.gate.report_available is False
    assert pipeline.monitoring.report_available and not pipeline.monitoring.summary_available
    html = _page(overview)
    assert "MLflow registered model</a>" in html and "no gate/verdict.md" in html
    assert "/mlops/gate/" not in html and "/mlops/summary/" not in html and "no summary.json" in html
    assert f"/mlops/monitoring/{PIPELINE}/{run.info.run_id}" in html

    # Every link the page renders goes to a registered model, version or run that exists, or to a report
    # whose artifact exists.
    run_ids = {r.info.run_id for r in client.search_runs([experiment, monitoring])}
    for href in re.findall(r'href="([^"]+)"', html):
        if "/#/models/" in href:
            path = href.split("/#/models/")[1].split("?")[0].split("/")
            assert path[0] == PIPELINE and (len(path) == 1 or client.get_model_version(PIPELINE, path[2]))
        elif "/runs/" in href:
            assert href.split("/runs/")[1].split("?")[0] in run_ids


def test_the_chart_shows_each_gated_versions_metric_and_marks_the_champion(pipelines: Path) -> None:
    from mlops import registry
    from mlops.ui.models import models_overview

    client = registry.client()
    experiment = client.create_experiment(PIPELINE)
    client.create_registered_model(PIPELINE)
    metrics = {1: 0.91, 2: 0.95, 3: 0.5}
    for number, value in metrics.items():
        verdict = "rejected" if number == 3 else "passed"
        assert _version(client, experiment, _gated(verdict, str(value), f"2026-11-0{number}")) == number
    _version(client, experiment, {})  # v4: registered, not gated yet
    client.set_registered_model_alias(PIPELINE, registry.CHAMPION, 2)

    (pipeline,) = models_overview().pipelines
    history = pipeline.history
    assert history.metric == "roc_auc" and history.ungated == 1
    assert {p.version: p.value for p in history.points} == metrics
    assert [p.version for p in history.points if p.champion] == [2]
    html = _page(models_overview())
    points = re.findall(r'<g class="point[^"]*" data-version="(\d+)" data-value="([^"]+)"', html)
    assert {int(v): float(x) for v, x in points} == metrics
    assert re.findall(r'data-version="(\d+)"[^>]*data-champion="true"', html) == ["2"]
    svg = re.search(r"<svg role=\"img\".*?</svg>", html, re.S).group(0)
    assert "<title" in svg and "<desc" in svg and "v2: roc_auc 0.95 (champion)" in svg
    assert (
        "1 not gated" in html and "<script" not in svg and "http" not in svg.replace("http://www.w3.org", "")
    )


def test_chart_geometry_has_higher_values_higher_and_handles_one_point() -> None:
    from mlops.ui.chart import metric_chart
    from mlops.ui.models import MetricHistory, MetricPoint

    chart = metric_chart(MetricHistory("f1", [MetricPoint(1, 0.8), MetricPoint(2, 0.9, True)]))
    first, second = chart.points
    assert second.y < first.y and second.x > first.x and (chart.low, chart.high) == ("0.8", "0.9")
    single = metric_chart(MetricHistory("f1", [MetricPoint(5, 0.7, True)]))
    (point,) = single.points
    assert 0 < point.y < single.height and single.title == "f1 of 1 gated version(s), champion v5"
    assert metric_chart(MetricHistory("f1", [], ungated=2)) is None


def test_experiments_are_created_and_kept_as_ml_experiments(mlops_home: Path) -> None:
    """MLflow 3's UI lists an experiment under its "Model training" (ML) switch by ``mlflow.experimentKind``."""
    from mlops import registry
    from mlops.ml.training import ensure_experiment

    client = registry.client()
    created = client.get_experiment(ensure_experiment("fresh"))
    assert created.tags["mlflow.experimentKind"] == "custom_model_development"
    old = client.create_experiment("made-before")  # as every experiment was before this change
    assert "mlflow.experimentKind" not in client.get_experiment(old).tags
    assert ensure_experiment("made-before") == old
    assert client.get_experiment(old).tags["mlflow.experimentKind"] == "custom_model_development"
