"""Governance on a real MLflow store: semantic versions, lineage, the audit trail and model cards."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlops import registry
from mlops.config import Gate, MetricRule, PipelineConfig
from mlops.data import storage
from mlops.data.batches import ingest_batch, validate_and_file
from mlops.ml import training
from mlops.registry import cards, governance
from mlops.services.gate import run_gate
from mlops.tooling.cli import main
from mlops.tooling.demo import governance_story

pytestmark = pytest.mark.unit
PIPELINE = "breast_cancer"
LENIENT = Gate(
    primary_metric="roc_auc",
    threshold=0.5,
    max_regression=0.5,
    secondary=[MetricRule(metric="recall", threshold=0.0)],
)
DUMMY = {"estimator": "sklearn.dummy.DummyClassifier", "params": {"strategy": "prior"}}


# A model history on a real registry -----------------------------------------------------------------------------
@dataclass
class History:
    config: PipelineConfig
    runs: dict[int, str]


@pytest.fixture(scope="module")
def history(module_home: Path, breast_cancer: PipelineConfig, bc_files: list[Path]) -> History:
    """v1 (batch 1, champion) -> v2 (batches 1+2, promoted) -> v3 (same data and config) -> v4 (a dummy,
    rejected); v2 was gated against v1 and has a card."""
    config = breast_cancer.model_copy(update={"gate": LENIENT})
    runs = {}
    batches = [validate_and_file(config, ingest_batch(config, str(p))).batch for p in bc_files[:2]]
    plan = [(batches[0], None), (batches[1], None), (batches[1], None), (batches[1], DUMMY)]
    for number, (batch, override) in enumerate(plan, start=1):
        result = training.train_model(config, batch, lineage={"airflow.dag_id": "breast_cancer_training",
                                                              "airflow.run_id": f"manual__{number}"},
                                      model_override=override)  # fmt: skip
        assert registry.register_version(config.name, result.model_uri, result.run_id, result.tags) == number
        runs[number] = result.run_id
    assert run_gate(config, 1).passed
    registry.promote(PIPELINE, 1, None, audit={"by": "alice", "reason": "first model"})
    assert run_gate(config, 2).passed
    registry.record_audit(PIPELINE, 2, "approved", {"by": "bob", "reason": "looks good"})
    registry.promote(PIPELINE, 2, 1, audit={"by": "airflow:bob", "reason": "new batch"})
    strict = config.model_copy(update={"gate": Gate(primary_metric="roc_auc", threshold=0.9)})
    assert not run_gate(strict, 4).passed
    cards.refresh_cards(PIPELINE, [1, 2, 4])
    return History(config, runs)


def test_each_version_gets_its_semantic_version_tag_and_description(history: History) -> None:
    expected = {1: ("1.0.0", "initial"), 2: ("1.1.0", "minor"), 3: ("1.1.1", "patch"), 4: ("2.0.0", "major")}
    for number, (semver, kind) in expected.items():
        version = registry.get_version(PIPELINE, number)
        assert (version.tags[governance.SEMVER_TAG], version.tags[governance.SEMVER_KIND_TAG]) == (
            semver,
            kind,
        )
        assert version.description.startswith(f"{semver} ({kind}): ")
    assert "vs v3 1.1.1" in registry.get_version(PIPELINE, 4).description
    assert (
        "model family changed (LogisticRegression -> DummyClassifier)"
        in registry.get_version(PIPELINE, 4).description
    )


def test_assign_semver_is_idempotent_and_backfills_older_versions(history: History) -> None:
    assert governance.assign_semver(PIPELINE, 2) == "1.1.0"
    # A version registered before semantic versions existed: its tags are gone, so it is computed again,
    # and a later version without one backfills the chain first.
    mlflow_client = registry.client()
    for number in (2, 3):
        mlflow_client.delete_model_version_tag(PIPELINE, str(number), governance.SEMVER_TAG)
    assert governance.assign_semver(PIPELINE, 3) == "1.1.1"
    assert registry.get_version(PIPELINE, 2).tags[governance.SEMVER_TAG] == "1.1.0"


def test_lineage_is_complete(history: History) -> None:
    found = governance.lineage(PIPELINE, 2)
    tags = found["tags"]
    for key in ("mlops.data_hash", "mlops.config_hash", "mlops.code_version", "mlops.code_dirty", "mlops.seed",
                "mlops.estimator_seed", "airflow.dag_id", "airflow.run_id"):  # fmt: skip
        assert tags[key], key
    assert (
        tags["mlops.estimator_seed"] == "42"
    )  # LogisticRegression takes a random_state: seeded with the split seed
    # The recorded hashes are those of the files the lineage points at (the batches are content-addressed).
    assert [storage.content_hash(b["uri"]) for b in found["batches"]] == [
        b["content_hash"] for b in found["batches"]
    ]
    assert len(found["batches"]) == 2 and all(b["uri"] and b["content_hash"] for b in found["batches"])
    assert found["environment"]["python"] and "scikit-learn" in found["environment"]["key_packages"]
    assert found["compared_against"] == "1"
    run = registry.client().get_run(history.runs[2])
    assert run.data.tags[governance.COMPARED_AGAINST_TAG] == "1"
    assert registry.get_version(PIPELINE, 1).tags[governance.COMPARED_AGAINST_TAG] == "none"
    config = governance.logged_config(history.runs[2], PIPELINE)
    assert "random_state" not in config.model.params  # the config as written; the seed is in the lineage
    assert run.data.tags["mlops.config_hash"] == config.config_hash


def test_estimators_are_seeded_unless_the_recipe_says_otherwise(breast_cancer: PipelineConfig) -> None:
    model = training.build_pipeline(breast_cancer)
    assert model.named_steps["model"].random_state == breast_cancer.split.seed
    assert training.build_pipeline(breast_cancer, seeded=False).named_steps["model"].random_state is None
    assert training.estimator_seed(breast_cancer) == "42"
    assert training.estimator_seed(breast_cancer, seeded=False) == "none"  # an older run, trained unseeded
    unseeded = training.effective_config(
        breast_cancer, {"params": {**breast_cancer.model.params, "random_state": None}}
    )
    assert training.build_pipeline(unseeded).named_steps["model"].random_state is None
    assert training.estimator_seed(unseeded) == "none"
    pinned = training.effective_config(breast_cancer, {"params": {"random_state": 7}})
    assert training.estimator_seed(pinned) == "7"
    assert (
        training.estimator_seed(
            training.effective_config(breast_cancer, {"estimator": "sklearn.naive_bayes.GaussianNB"})
        )
        == "n/a"
    )


def test_audit_report_tells_who_decided_what_and_when(history: History) -> None:
    records = governance.audit_report(PIPELINE)
    assert [(r.version, r.semver, r.status, r.verdict) for r in records] == [
        (1, "1.0.0", "retired", "passed"),
        (2, "1.1.0", "champion", "passed"),
        (3, "1.1.1", "registered", None),
        (4, "2.0.0", "rejected", "rejected"),
    ]
    v2 = records[1]
    assert v2.compared_against == "1"
    events = [(e["event"], e.get("by")) for e in v2.events]
    assert events[0] == ("registered", "airflow:breast_cancer_training/manual__2")
    assert ("approved", "bob") in events and ("promoted", "airflow:bob") in events
    assert v2.decisions(governance.APPROVALS)[0].startswith("approved by bob at ")
    assert ("retired", "airflow:bob") in [(e["event"], e.get("by")) for e in records[0].events]
    assert "below the minimum 0.9" in records[3].reasons[0]


def test_audit_renders_as_table_csv_and_json(history: History) -> None:
    records = governance.audit_report(PIPELINE)
    table = governance.render_audit(records, "table")
    assert "v2  1.1.0    champion     gate: passed, gated against v1" in table
    assert "why: roc_auc" in table  # a rejection says why
    rows = list(csv.DictReader(io.StringIO(governance.render_audit(records, "csv"))))
    assert tuple(rows[0]) == governance.AUDIT_COLUMNS
    promoted = [r for r in rows if r["event"] == "promoted" and r["version"] == "2"]
    assert promoted and promoted[0]["by"] == "airflow:bob" and promoted[0]["details"].startswith("v1 -> v2")
    data = json.loads(governance.render_audit(records, "json"))
    assert [d["version"] for d in data] == [1, 2, 3, 4] and data[1]["events"][0]["event"] == "registered"
    with pytest.raises(ValueError, match="unknown format"):
        governance.render_audit(records, "xml")


def test_audit_and_history_on_the_command_line(
    history: History, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", PIPELINE]) == 0
    assert "v4  2.0.0    rejected" in capsys.readouterr().out
    out = tmp_path / "audit.csv"
    assert main(["audit", PIPELINE, "--format", "csv", "--output", str(out)]) == 0
    assert out.read_text().startswith("version,semver,status,verdict,event,at,by,details\n")
    assert capsys.readouterr().out == f"wrote {out}\n"
    assert main(["audit", PIPELINE, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["semver"] == "1.0.0"
    assert main(["history", PIPELINE]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "semver" in lines[0] and any(" v2 1.1.0 " in line and "promoted" in line for line in lines)


def test_an_empty_pipeline_has_an_empty_audit(history: History) -> None:
    assert governance.audit_report("no_such_model") == []
    assert governance.render_audit([], "table") == "no registered versions"


# Model cards ----------------------------------------------------------------------------------------------------
def test_cards_are_logged_for_gated_versions_rejected_ones_included(history: History) -> None:
    for number in (1, 2, 4):
        markdown = governance.load_text(history.runs[number], cards.CARD_MARKDOWN)
        page = governance.load_text(history.runs[number], cards.CARD_HTML)
        assert markdown and markdown.startswith(f"# Model card: {PIPELINE} v{number} (")
        assert page and page.startswith("<!DOCTYPE html>") and "<script" not in page and "http" not in page
        assert registry.get_version(PIPELINE, number).tags["mlops.card"].endswith(cards.CARD_HTML)
    rejected = governance.load_text(history.runs[4], cards.CARD_MARKDOWN)
    assert "| **Verdict** | REJECTED |" in rejected and "below the minimum 0.9" in rejected


def test_card_content(history: History, breast_cancer: PipelineConfig) -> None:
    card = cards.build_card(PIPELINE, 2)
    assert (card.semver, card.status, card.owner) == ("1.1.0", "champion", breast_cancer.airflow.owner)
    assert card.intended_use == breast_cancer.intended_use and card.limitations == breast_cancer.limitations
    assert len(card.training_data["batches"]) == 2 and card.training_data["train_rows"]
    assert card.gate["status"] == "passed" and card.gate["against"] == "v1"
    assert [e["event"] for e in card.approvals] == ["approved"]
    assert "promoted" in [e["event"] for e in card.deployment]
    assert card.monitoring is None
    markdown = card.to_markdown()
    for heading in ("Intended use", "Training data", "Metrics", "Gate verdict", "Approval", "Deployment history",
                    "Monitoring", "Known limitations", "Lineage"):  # fmt: skip
        assert f"\n## {heading}\n" in markdown, heading
    assert cards.NO_MONITORING in markdown
    assert "By slice: no slices declared" in markdown
    assert "| roc_auc |" in markdown and "champion at gate time" in markdown
    assert card.lineage["tags"]["mlops.data_hash"] in markdown
    assert "<th>Compared against</th><td>v1</td>" in card.to_html()


def test_card_shows_the_latest_monitoring_run(history: History) -> None:
    import mlflow

    experiment = training.ensure_experiment(f"{PIPELINE}-monitoring")
    mlflow_client = registry.client()
    for decision, reasons in (
        ("ok", "no drift"),
        ("retrain", "mean_radius drifted (0.31) | 3 of 30 features"),
    ):
        run = mlflow_client.create_run(experiment, tags={"mlops.model_version": "2",
                                                         "mlops.monitoring.decision": decision,
                                                         "mlops.monitoring.reasons": reasons})  # fmt: skip
        mlflow_client.set_terminated(run.info.run_id)
    other = mlflow_client.create_run(
        experiment, tags={"mlops.model_version": "1", "mlops.monitoring.decision": "warn"}
    )
    mlflow_client.set_terminated(other.info.run_id)
    del mlflow

    card = cards.build_card(PIPELINE, 2)
    assert card.monitoring["decision"] == "retrain"
    assert card.monitoring["reasons"] == ["mean_radius drifted (0.31)", "3 of 30 features"]
    assert "retrain (run " in card.to_markdown()
    assert cards.build_card(PIPELINE, 1).monitoring["decision"] == "warn"
    assert cards.build_card(PIPELINE, 4).monitoring is None


def test_card_on_the_command_line(
    history: History, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["card", PIPELINE]) == 0  # the champion
    assert capsys.readouterr().out.startswith(f"# Model card: {PIPELINE} v2 (1.1.0)")
    out = tmp_path / "card.html"
    assert main(["card", PIPELINE, "4", "--html", "--output", str(out)]) == 0
    assert "REJECTED" in out.read_text()
    assert main(["card", PIPELINE, "99"]) == 1
    assert "v99: no model card" in capsys.readouterr().out


def test_governance_story_for_the_demo(history: History) -> None:
    said: list[str] = []
    governance_story(PIPELINE, said.append)
    text = "\n".join(said)
    assert text.startswith(f"Model card of {PIPELINE} v2 (1.1.0):")
    assert "Audit trail of breast_cancer" in text and "v4  2.0.0" in text
    said.clear()
    governance_story("no_such_model", said.append)
    assert said == ["no_such_model: no registered versions yet"]


# Approval helpers (the DAG-level behaviour is in tests/e2e/test_governance_approval.py) ---------------------
def test_approval_requests_go_to_subscribed_routes_else_to_all() -> None:
    from mlops.airflow.approval import approval_routes
    from mlops.config import AlertRoute

    slack = AlertRoute(channel="slack", conn_id="slack_mlops", events=["failure", "approval"])
    email = AlertRoute(channel="email", conn_id="smtp_mlops", to=["a@example.com"])
    assert approval_routes([slack, email]) == [slack]
    fallback = approval_routes([email])
    assert [r.conn_id for r in fallback] == ["smtp_mlops"] and "approval" in fallback[0].events
    assert approval_routes([]) == []


def test_the_approval_request_shows_the_gate_and_the_card() -> None:
    from mlops.airflow.approval import request_body

    verdict = {"challenger_version": 3, "champion_version": 2, "reasons": ["roc_auc 0.99 meets the minimum 0.9"],
               "challenger_metrics": {"roc_auc": 0.99}, "champion_metrics": {"roc_auc": 0.98}}  # fmt: skip
    body = request_body(PIPELINE, verdict, "1.2.0", "runs:/abc/card/model_card.html")
    assert body.startswith("**breast_cancer v3** (1.2.0) passed the gate against champion v2.")
    assert "- roc_auc 0.99 meets the minimum 0.9" in body and "| roc_auc | 0.9900 | 0.9800 |" in body
    assert "`runs:/abc/card/model_card.html`" in body
    first = request_body(
        PIPELINE, {**verdict, "champion_version": None, "champion_metrics": None}, None, None
    )
    assert "against champion none (first model)" in first and "| roc_auc | 0.9900 | - |" in first


def test_an_approval_decision_is_audited(history: History) -> None:
    from mlops.airflow.approval import record_decision

    record_decision(history.config, 3, "timed_out", None, "2026-01-01T00:00:00+00:00")
    entry = registry.audit_trail(PIPELINE, 3)[-1]
    assert (entry["event"], entry["by"], entry["timeout_minutes"]) == (
        "approval_timed_out",
        "timeout",
        1440.0,
    )
    tags = registry.get_version(PIPELINE, 3).tags
    assert (tags["approval.status"], tags["approval.by"], tags["deploy.status"]) == (
        "timed_out",
        "timeout",
        "not_approved",
    )
    assert [r.status for r in governance.audit_report(PIPELINE)][2] == "not_approved"
