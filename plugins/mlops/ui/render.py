"""The Models page as one server-rendered HTML document. Every value from a config or MLflow is escaped."""

from __future__ import annotations

from collections.abc import Callable
from html import escape

from mlops.ui.models import GateSummary, ModelsOverview, MonitoringSummary, PipelineOverview, VersionSummary

#: Builds the app's own URLs (reports) relative to the page: (kind, pipeline, key) -> href.
LinkBuilder = Callable[[str, str, str], str]

_BADGE = {
    "passed": "good",
    "champion": "good",
    "ok": "good",
    "rejected": "bad",
    "retrain": "bad",
    "rolled_back": "bad",
    "warn": "warn",
    "challenger": "info",
}

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;padding:20px 24px;color:#1a202c;
background:#f7fafc;font-size:14px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:0}h3{font-size:12px;margin:0 0 6px;color:#4a5568;
text-transform:uppercase;letter-spacing:.04em}
.meta{color:#4a5568;margin-bottom:16px}.meta a,.card a{color:#2b6cb0}
.card{background:#fff;border:1px solid #e2e8f0;border-radius:8px;padding:14px 16px;margin-bottom:16px}
.head{display:flex;gap:12px;align-items:baseline;flex-wrap:wrap;margin-bottom:10px}.head .sub{color:#718096}
.grid{display:grid;grid-template-columns:repeat(4,minmax(0,1fr));gap:12px}
.cell{border:1px solid #edf2f7;border-radius:6px;padding:10px;background:#fcfdfe;overflow-wrap:anywhere}
.big{font-size:20px;font-weight:600}.muted{color:#718096}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;background:#edf2f7}
.good{background:#c6f6d5;color:#22543d}.bad{background:#fed7d7;color:#822727}.warn{background:#fefcbf;color:#744210}
.info{background:#bee3f8;color:#2a4365}
ul{margin:6px 0 0;padding-left:18px}li{margin:2px 0}.links{margin-top:8px;display:flex;gap:10px;flex-wrap:wrap}
.errors{background:#fff5f5;border:1px solid #feb2b2;border-radius:8px;padding:10px 14px;margin-bottom:16px}
@media (max-width:900px){.grid{grid-template-columns:repeat(2,minmax(0,1fr))}}
"""

# Inside the Airflow UI the page is an iframe sandboxed without "allow-popups": a link with target=_blank would do
# nothing there. The frame is same-origin, so a click is handed to the parent page, which opens the tab.
_SCRIPT = """
document.addEventListener("click", function (event) {
  var link = event.target.closest("a[target=_blank]");
  if (!link || window.top === window.self) return;
  try {
    var proxy = window.top.document.createElement("a");
    proxy.href = link.href; proxy.target = "_blank"; proxy.rel = "noopener noreferrer";
    window.top.document.body.appendChild(proxy); proxy.click(); proxy.remove();
    event.preventDefault();
  } catch (error) { /* not same-origin: let the browser do what it can */ }
});
"""


def _e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def _badge(text: str) -> str:
    return f'<span class="badge {_BADGE.get(text, "")}">{_e(text)}</span>'


def _link(href: str, text: str) -> str:
    return f'<a href="{_e(href)}" target="_blank" rel="noopener noreferrer">{_e(text)}</a>'


def _reasons(reasons: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{_e(r)}</li>" for r in reasons) + "</ul>" if reasons else ""


def _version(title: str, version: VersionSummary | None, empty: str) -> str:
    if version is None:
        return f'<div class="cell"><h3>{_e(title)}</h3><div class="muted">{_e(empty)}</div></div>'
    semver = f' <span class="muted">{_e(version.semver)}</span>' if version.semver else ""
    gate = f"gate: {_badge(version.gate_verdict)}" if version.gate_verdict else "not gated yet"
    return (
        f'<div class="cell" data-role="{_e(title.lower())}"><h3>{_e(title)}</h3>'
        f'<div class="big">v{version.version}{semver}</div>'
        f"<div>{_badge(version.status)} {gate}</div>"
        f'<div class="muted">registered {_e(version.created_at)}</div>'
        f'<div class="links">{_link(version.mlflow_url, "MLflow model version")}</div></div>'
    )


def _gate(pipeline: str, gate: GateSummary | None, links: LinkBuilder) -> str:
    if gate is None:
        return (
            '<div class="cell"><h3>Last gate verdict</h3><div class="muted">no version gated yet</div></div>'
        )
    against = f"champion v{gate.champion_version}" if gate.champion_version else "no champion (first model)"
    value = f"{gate.primary_metric} {gate.challenger_value}" if gate.challenger_value else gate.primary_metric
    return (
        '<div class="cell" data-role="gate"><h3>Last gate verdict</h3>'
        f"<div>{_badge(gate.verdict)} <b>v{gate.version}</b> {_e(gate.semver or '')} against {_e(against)}</div>"
        f'<div class="muted">{_e(value)}, evaluated {_e(gate.evaluated_at)}</div>'
        f"{_reasons(gate.reasons)}"
        f'<div class="links">{_link(links("gate", pipeline, str(gate.version)), "Gate report")}'
        f"{_link(gate.mlflow_url, 'MLflow')}</div></div>"
    )


def _monitoring(pipeline: str, monitoring: MonitoringSummary | None, links: LinkBuilder) -> str:
    if monitoring is None:
        return '<div class="cell"><h3>Last monitoring</h3><div class="muted">no monitoring window yet</div></div>'
    version = f"champion v{monitoring.model_version}" if monitoring.model_version else "no champion"
    report = (
        _link(links("monitoring", pipeline, monitoring.run_id), "Drift report")
        if monitoring.report_available
        else f'<span class="muted">no report{": " + _e(monitoring.report_error) if monitoring.report_error else ""}</span>'
    )
    summary = _link(links("summary", pipeline, monitoring.run_id), "summary.json")
    return (
        '<div class="cell" data-role="monitoring"><h3>Last monitoring</h3>'
        f"<div>{_badge(monitoring.decision)} {_e(version)}</div>"
        f'<div class="muted">window {_e(monitoring.window_start)} .. {_e(monitoring.window_end)}</div>'
        f"{_reasons(monitoring.reasons)}"
        f'<div class="links">{report}{summary}{_link(monitoring.mlflow_url, "MLflow run")}</div></div>'
    )


def _pipeline(pipeline: PipelineOverview, links: LinkBuilder) -> str:
    error = f'<div class="errors">{_e(pipeline.error)}</div>' if pipeline.error else ""
    return (
        f'<section class="card" id="pipeline-{_e(pipeline.name)}" data-pipeline="{_e(pipeline.name)}">'
        f'<div class="head"><h2>{_e(pipeline.name)}</h2>'
        f'<span class="sub">{_e(pipeline.task)} · {pipeline.versions} version(s) · DAGs '
        f"{_e(pipeline.training_dag_id)}, {_e(pipeline.monitoring_dag_id)}</span>"
        f"{_link(pipeline.registered_model_url, 'MLflow registered model')}</div>{error}"
        '<div class="grid">'
        f"{_version('Champion', pipeline.champion, 'no champion yet')}"
        f"{_version('Challenger', pipeline.challenger, 'no challenger')}"
        f"{_gate(pipeline.name, pipeline.gate, links)}"
        f"{_monitoring(pipeline.name, pipeline.monitoring, links)}"
        "</div></section>"
    )


def render_page(overview: ModelsOverview, links: LinkBuilder, user: str) -> str:
    """The whole page: config errors first, then one card per pipeline."""
    errors = ""
    if overview.config_errors:
        items = "".join(f"<li>{_e(path)}: {_e(msg)}</li>" for path, msg in overview.config_errors.items())
        errors = f'<div class="errors"><b>Broken pipeline configs</b><ul>{items}</ul></div>'
    cards = "".join(_pipeline(p, links) for p in overview.pipelines) or (
        '<div class="card muted">No pipeline configs found.</div>'
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Models</title><style>{_STYLE}</style></head><body>"
        "<h1>Models</h1>"
        f'<div class="meta">{len(overview.pipelines)} pipeline(s) · as of {_e(overview.generated_at)} · '
        f"signed in as {_e(user)} · {_link(overview.mlflow_ui_url, 'MLflow UI')} · "
        f'<a href="{_e(links("api", "", ""))}">JSON</a></div>'
        f"{errors}{cards}<script>{_SCRIPT}</script></body></html>"
    )
