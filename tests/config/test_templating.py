"""The Jinja2 environment of the HTML pages: autoescape on every page, and a missing variable fails the render.

Each of the four HTML renderings (validation report, model card, Models page, alert e-mail) gets hostile text
where users control it (a column name, a reason, a pipeline name, an error message) and must print it as text.
"""

from __future__ import annotations

import jinja2
import pytest
from markupsafe import Markup

from mlops.airflow.alerts import Alert
from mlops.config.templating import environment, render
from mlops.data.report import Failure, ValidationReport, render_report_html
from mlops.registry.cards import ModelCard
from mlops.ui.models import GateSummary, ModelsOverview, MonitoringSummary, PipelineOverview
from mlops.ui.render import render_page

pytestmark = pytest.mark.unit

SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
#: Text that would close an attribute's quotes and add an event handler if printed as it is.
BREAKOUT = 'x" onmouseover="alert(2)'
EMAIL_CONTEXT = {
    "colour": "#b42318",
    "label": "FAILURE",
    "pipeline": "churn",
    "title": "task train failed",
    "rows": [("Task", "train")],
    "summary_label": "Error",
    "summary": "ValueError: boom",
    "links": [("Log", "http://airflow.test/log")],
}


def assert_escaped(page: str) -> None:
    assert SCRIPT not in page
    assert ESCAPED in page


def _links(kind: str, pipeline: str, key: str) -> str:
    return f"/mlops/{kind}/{pipeline}/{key}"


# Autoescape in each page ------------------------------------------------------------------------------------
def test_validation_report_escapes_column_names_rules_and_reasons() -> None:
    failure = Failure(
        expectation="expect_column_to_exist",
        column=SCRIPT,
        unexpected_count=None,
        unexpected_percent=None,
        sample=[SCRIPT],
        rule=f"feature {SCRIPT} must exist",
        detail="column is missing",
    )
    report = ValidationReport(
        success=False, pipeline=BREAKOUT, rows=3, evaluated=1, failed=[failure], result={"results": []}
    )

    page = render_report_html(report)

    assert_escaped(page)
    assert f"<code>{ESCAPED}</code>" in page  # the column, in its cell
    assert 'onmouseover="alert(2)' not in page
    assert page == report.to_html()
    assert_escaped(ValidationReport.for_unreadable("tumours", f"bad.csv: {SCRIPT}").to_html())


def test_model_card_escapes_what_the_config_and_mlflow_say() -> None:
    card = ModelCard(
        pipeline="churn",
        version=1,
        semver=None,
        status="registered",
        generated_at="2026-01-01T00:00:00+00:00",
        description=SCRIPT,
        limitations=[SCRIPT],
        features=[{"name": SCRIPT, "type": "numeric", "nullable": False, "description": BREAKOUT}],
        gate={"status": "rejected", "reasons": [SCRIPT], "against": "v1"},
    )

    page = card.to_html()

    assert_escaped(page)
    assert f"<li>{ESCAPED}</li>" in page and f"<td>{ESCAPED}</td>" in page
    assert 'onmouseover="alert(2)' not in page
    assert "<script" not in page  # a card has no script of its own


def test_models_page_escapes_pipeline_names_reasons_and_errors() -> None:
    gate = GateSummary(version=2, semver=None, verdict="rejected", reasons=[SCRIPT], evaluated_at="today",
                       primary_metric="roc_auc", challenger_value=None, champion_version=1, run_id="r",
                       mlflow_url="http://mlflow.test/r")  # fmt: skip
    monitoring = MonitoringSummary(decision="warn", reasons=[], window_start="a", window_end="b", model_version=1,
                                   run_id="m", experiment_id="1", mlflow_url="http://mlflow.test/m",
                                   report_available=False, report_error=SCRIPT)  # fmt: skip
    pipeline = PipelineOverview(name=BREAKOUT, task="classification", training_dag_id="t", monitoring_dag_id="m",
                                registered_model_url="http://mlflow.test/", gate=gate, monitoring=monitoring,
                                error=SCRIPT)  # fmt: skip
    overview = ModelsOverview(pipelines=[pipeline], config_errors={"bad.yaml": SCRIPT})

    page = render_page(overview, _links, SCRIPT)

    # The user, the config error, the pipeline's error, the gate's reason and the report error.
    assert page.count(ESCAPED) == 5
    assert page.count("<script>") == 1  # the page's own script only
    assert 'onmouseover="alert(2)' not in page
    assert 'data-pipeline="x&#34; onmouseover=&#34;alert(2)"' in page


def test_alert_email_escapes_the_error_message_and_details() -> None:
    alert = Alert(
        pipeline="churn",
        event="failure",
        severity="error",
        title=f"task {SCRIPT} failed",
        summary=f"ValueError: {SCRIPT}",
        details={SCRIPT: SCRIPT},
        log_url=f"http://airflow.test/log?x={BREAKOUT}",
    )

    body = alert.html()

    assert_escaped(body)
    assert body.count(ESCAPED) == 4
    assert 'onmouseover="alert(2)' not in body


# The environment --------------------------------------------------------------------------------------------
def test_html_deliberately_marked_safe_is_kept() -> None:
    body = render("alert_email.html.j2", **{**EMAIL_CONTEXT, "title": Markup("<b>bold</b>")})

    assert "<b>bold</b>" in body


def test_every_template_is_autoescaped() -> None:
    env = environment()

    names = env.list_templates()
    assert {"_page.html.j2", "validation_report.html.j2", "model_card.html.j2", "models_page.html.j2",
            "alert_email.html.j2"} <= set(names)  # fmt: skip
    assert all(env.autoescape(name) for name in names)
    assert env.autoescape("anything.txt")  # a template named otherwise is escaped too
    assert environment() is env  # built once


def test_a_missing_variable_fails_the_render() -> None:
    context = dict(EMAIL_CONTEXT)
    del context["summary"]

    with pytest.raises(jinja2.UndefinedError, match="summary"):
        render("alert_email.html.j2", **context)
    assert "ValueError: boom" in render("alert_email.html.j2", **EMAIL_CONTEXT)


def test_a_missing_attribute_fails_the_render() -> None:
    with pytest.raises(jinja2.UndefinedError, match="pipelines"):
        render("models_page.html.j2", overview=object(), links=_links, user="eve", badges={})


def test_an_unknown_template_fails() -> None:
    with pytest.raises(jinja2.TemplateNotFound):
        render("no_such_page.html.j2")
