"""Model cards: one page per model version that says what it is for, what it learnt from, how good it is
(overall and by slice), what the gate decided and why, where it served, how it behaves in production, and
what it was built from.

Everything comes from the records of the version: the config logged with its training run (intended use,
owner, limitations), the run's metrics, snapshot and environment, the gate's ``gate/verdict.json``, the audit
entries on the version and the latest run of the ``<pipeline>-monitoring`` experiment tagged with the
version. A card is logged on the training run as ``card/model_card.md`` and ``card/model_card.html`` (one
self-contained file, no external CSS or scripts) after the gate and again when the version is promoted or
rolled back; ``mlops card`` renders a fresh one at any time.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlops import registry
from mlops.config.templating import render
from mlops.registry import governance

log = logging.getLogger(__name__)

CARD_MARKDOWN = "card/model_card.md"
CARD_HTML = "card/model_card.html"
MONITORING_SUFFIX = "-monitoring"
NO_MONITORING = "no monitoring yet"

#: Audit events with their own section; every other event of a version is its deployment history.
OWN_SECTION = ("approval_requested", "approved", "approval_rejected", "approval_timed_out", "reproduced")
Block = tuple  # ("p", text) | ("kv", [(key, value)]) | ("table", headers, rows) | ("list", items)


@dataclass
class ModelCard:
    """The facts of one model version; rendered as Markdown or HTML."""

    pipeline: str
    version: int
    semver: str | None
    status: str
    generated_at: str
    description: str = ""
    intended_use: str = ""
    owner: str = ""
    limitations: list[str] = field(default_factory=list)
    task: str = ""
    target: str = ""
    estimator: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    features: list[dict[str, Any]] = field(default_factory=list)
    training_data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    gate: dict[str, Any] | None = None
    slices: list[dict[str, Any]] = field(default_factory=list)
    approvals: list[dict[str, Any]] = field(default_factory=list)
    deployment: list[dict[str, Any]] = field(default_factory=list)
    monitoring: dict[str, Any] | None = None
    lineage: dict[str, Any] = field(default_factory=dict)
    reproductions: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def title(self) -> str:
        semver = f" ({self.semver})" if self.semver else ""
        return f"Model card: {self.pipeline} v{self.version}{semver}"

    def summary_lines(self) -> list[str]:
        """A few lines for a terminal: status, use, data, metrics, gate, monitoring."""
        lines = [f"status {self.status}; owner {self.owner or '-'}; {self.estimator.rpartition('.')[2]}"]
        if self.intended_use:
            lines.append(f"intended use: {_shorten(self.intended_use, 100)}")
        data = self.training_data
        lines.append(
            f"trained on {data.get('train_rows', '?')} rows from {len(data.get('batches', []))} batch(es); "
            f"holdout {data.get('holdout_rows', '?')} rows"
        )
        if self.metrics:
            lines.append("holdout: " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(self.metrics.items())))
        if self.gate:
            lines.append(f"gate {self.gate['status']}: {_shorten('; '.join(self.gate['reasons']), 140)}")
        lines.append(f"monitoring: {_monitoring_text(self.monitoring)}")
        if self.limitations:
            lines.append(
                f"limitations: {len(self.limitations)} listed, e.g. {_shorten(self.limitations[0], 90)}"
            )
        return lines

    # Rendering ------------------------------------------------------------------------------------------------
    def sections(self) -> list[tuple[str, list[Block]]]:
        """The card's sections, each a list of blocks, shared by both renderings."""
        overview: list[Block] = [
            (
                "kv",
                [
                    ("Model", f"{self.pipeline} version {self.version}"),
                    ("Semantic version", self.semver or "-"),
                    ("Status", self.status),
                    ("Owner", self.owner or "-"),
                    ("Task", f"{self.task}, target `{self.target}`"),
                    ("Estimator", self.estimator),
                    (
                        "Parameters",
                        ", ".join(f"{k}={v}" for k, v in sorted(self.params.items())) or "defaults",
                    ),
                    ("Card generated", self.generated_at),
                ],
            )
        ]
        if self.description:
            overview.insert(0, ("p", self.description))
        use: list[Block] = [
            ("p", self.intended_use or "Not stated (set `intended_use` in the pipeline config).")
        ]
        data = self.training_data
        training: list[Block] = [
            (
                "kv",
                [
                    ("Training rows", data.get("train_rows", "-")),
                    ("Holdout rows", data.get("holdout_rows", "-")),
                    ("Window", data.get("window", "-")),
                    ("Snapshot hash", data.get("snapshot_hash", "-")),
                ],
            ),
            (
                "table",
                ["batch (sha256)", "rows", "ingested", "source"],
                [
                    [
                        b.get("content_hash", "")[:16],
                        b.get("rows", "-"),
                        b.get("ingested_at", "-"),
                        b.get("source", ""),
                    ]
                    for b in data.get("batches", [])
                ],
            ),
            (
                "table",
                ["feature", "type", "nullable", "description"],
                [
                    [f["name"], f["type"], f.get("nullable", False), f.get("description", "")]
                    for f in self.features
                ],
            ),
        ]
        metrics: list[Block] = []
        champion = (self.gate or {}).get("champion_metrics") or {}
        if self.metrics:
            headers = ["metric", "this version (holdout)"] + (["champion at gate time"] if champion else [])
            rows = [
                [name, f"{value:.4f}"] + ([_fmt(champion.get(name))] if champion else [])
                for name, value in sorted(self.metrics.items())
            ]
            metrics.append(("table", headers, rows))
        else:
            metrics.append(("p", "No metrics recorded."))
        if self.slices:
            rows = [
                [s["label"], s["rows"], name, f"{value:.4f}"]
                for s in self.slices
                for name, value in sorted(s["metrics"].items())
                if name in self._slice_metrics()
            ]
            metrics += [
                ("p", "By slice (the gate's slices, on the same holdout):"),
                ("table", ["slice", "rows", "metric", "value"], rows),
            ]
        else:
            metrics.append(("p", "By slice: no slices declared (`gate.slices` in the pipeline config)."))
        gate: list[Block]
        if self.gate:
            gate = [
                (
                    "kv",
                    [
                        ("Verdict", self.gate["status"].upper()),
                        ("Compared against", self.gate["against"]),
                        ("Evaluated", self.gate.get("evaluated_at", "-")),
                    ],
                ),
                ("list", self.gate["reasons"]),
            ]
        else:
            gate = [("p", "Not gated yet.")]
        approvals: list[Block] = (
            [("table", ["decision", "by", "when", "details"], [_event_row(e) for e in self.approvals])]
            if self.approvals
            else [("p", "No approval recorded (not required, or not asked yet).")]
        )
        deployment: list[Block] = (
            [("table", ["event", "by", "when", "details"], [_event_row(e) for e in self.deployment])]
            if self.deployment
            else [("p", "Never deployed.")]
        )
        monitoring: list[Block] = [("p", _monitoring_text(self.monitoring))]
        if self.monitoring and self.monitoring.get("reasons"):
            monitoring.append(("list", self.monitoring["reasons"]))
        limitations: list[Block] = (
            [("list", self.limitations)] if self.limitations else [("p", "None stated (set `limitations`).")]
        )
        lin = self.lineage
        tags = lin.get("tags", {})
        env = lin.get("environment", {})
        lineage: list[Block] = [
            (
                "kv",
                [
                    ("MLflow run", lin.get("run_id", "-")),
                    ("Data hash", tags.get("mlops.data_hash", "-")),
                    ("Config hash", tags.get("mlops.config_hash", "-")),
                    ("Config", lin.get("config_artifact", "-")),
                    (
                        "Code version",
                        f"{tags.get('mlops.code_version', '-')}"
                        + (" (uncommitted changes)" if tags.get("mlops.code_dirty") == "true" else ""),
                    ),
                    ("Split seed", tags.get("mlops.seed", "-")),
                    ("Estimator seed", tags.get("mlops.estimator_seed", "-")),
                    ("Airflow", f"{tags.get('airflow.dag_id', '-')} / {tags.get('airflow.run_id', '-')}"),
                    ("Compared against", _against(lin.get("compared_against"))),
                    (
                        "Model files",
                        f"{lin.get('model_format') or 'cloudpickle'}, "
                        f"{lin.get('model_digest') or 'no digest (no loader accepts this version)'}",
                    ),
                    ("Last reproduction", _reproduction_text(self.reproductions)),
                    ("Python", env.get("python") or "-"),
                    (
                        "Packages",
                        ", ".join(f"{k} {v}" for k, v in env.get("key_packages", {}).items())
                        + f" ({env.get('n_packages', 0)} in {env.get('artifact', '-')})",
                    ),
                ],
            )
        ]
        return [
            ("Overview", overview),
            ("Intended use", use),
            ("Training data", training),
            ("Metrics", metrics),
            ("Gate verdict", gate),
            ("Approval", approvals),
            ("Deployment history", deployment),
            ("Monitoring", monitoring),
            ("Known limitations", limitations),
            ("Lineage", lineage),
        ]

    def _slice_metrics(self) -> set[str]:
        """The metrics the slice and fairness rules look at (every metric when unknown)."""
        wanted = set((self.gate or {}).get("slice_metrics") or [])
        return wanted or {m for s in self.slices for m in s["metrics"]}

    def to_markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for title, blocks in self.sections():
            out += [f"## {title}", ""]
            for block in blocks:
                out += _markdown_block(block) + [""]
        return "\n".join(out).rstrip() + "\n"

    def to_html(self) -> str:
        """The card as one self-contained page (template ``model_card.html.j2``; every value escaped)."""
        return render("model_card.html.j2", title=self.title, sections=self.sections())


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "-"


def _shorten(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _against(value: Any) -> str:
    return f"v{value}" if value not in (None, "", "none") else "no champion (first model)"


def _reproduction_text(entries: list[dict[str, Any]]) -> str:
    if not entries:
        return "never reproduced (mlops reproduce)"
    last = entries[-1]
    return f"{last.get('outcome')} ({last['at'][:19]}, run {last.get('run_id')})"


def _monitoring_text(monitoring: dict[str, Any] | None) -> str:
    if not monitoring:
        return NO_MONITORING
    return f"{monitoring['decision']} (run {monitoring['run_id']}, {monitoring['at']})"


def _event_row(entry: dict[str, Any]) -> list[Any]:
    details = {k: v for k, v in entry.items() if k not in ("event", "at", "by", "evidence")}
    return [entry["event"], entry.get("by", "-"), entry["at"][:19], json.dumps(details, default=str)[:300]]


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _markdown_block(block: Block) -> list[str]:
    kind = block[0]
    if kind == "p":
        return [str(block[1])]
    if kind == "list":
        return [f"- {_cell(item)}" for item in block[1]] or ["-"]
    if kind == "kv":
        return ["| | |", "| --- | --- |"] + [f"| **{k}** | {_cell(v)} |" for k, v in block[1]]
    headers, rows = block[1], block[2]
    if not rows:
        return ["(none)"]
    return [
        "| " + " | ".join(headers) + " |",
        "| " + " | ".join("---" for _ in headers) + " |",
        *("| " + " | ".join(_cell(c) for c in row) + " |" for row in rows),
    ]


# Gathering the facts ------------------------------------------------------------------------------------------
def latest_monitoring(pipeline: str, version: int) -> dict[str, Any] | None:
    """The most recent run of experiment ``<pipeline>-monitoring`` tagged ``mlops.model_version=<version>``."""
    mlflow_client = registry.client()
    experiment = mlflow_client.get_experiment_by_name(f"{pipeline}{MONITORING_SUFFIX}")
    if experiment is None:
        return None
    runs = mlflow_client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`mlops.model_version` = '{version}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        return None
    run = runs[0]
    tags = run.data.tags
    reasons = tags.get("mlops.monitoring.reasons") or ""
    try:
        parsed = json.loads(reasons)
        reasons_list = [str(r) for r in parsed] if isinstance(parsed, list) else [str(parsed)]
    except json.JSONDecodeError:
        reasons_list = [r.strip() for r in reasons.split(" | ") if r.strip()]
    return {
        "decision": tags.get("mlops.monitoring.decision", "unknown"),
        "reasons": reasons_list,
        "run_id": run.info.run_id,
        "at": datetime.fromtimestamp(run.info.start_time / 1000, UTC).isoformat(timespec="seconds"),
    }


def build_card(pipeline: str, version: int) -> ModelCard:
    """Gather a version's card from its records (no model is loaded)."""
    from mlops.errors import RegistryError

    mlflow_client = registry.client()
    model_version = registry.get_version(pipeline, version)
    run = mlflow_client.get_run(model_version.run_id)
    try:
        config = governance.logged_config(run.info.run_id, pipeline)
    except RegistryError:
        config = None
    lineage = governance.lineage(pipeline, version)
    verdict_text = governance.load_text(run.info.run_id, "gate/verdict.json")
    verdict = json.loads(verdict_text) if verdict_text else None
    records = {r.version: r for r in governance.audit_report(pipeline)}
    record = records.get(version)
    trail = registry.audit_trail(pipeline, version)
    params = run.data.params
    card = ModelCard(
        pipeline=pipeline,
        version=version,
        semver=model_version.tags.get(governance.SEMVER_TAG),
        status=record.status if record else "registered",
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        metrics=dict(run.data.metrics),
        approvals=[e for e in trail if e["event"] in (*governance.APPROVALS, "approval_requested")],
        deployment=[e for e in trail if not e["event"].startswith("gate_") and e["event"] not in OWN_SECTION],
        reproductions=[e for e in trail if e["event"] == "reproduced"],
        monitoring=latest_monitoring(pipeline, version),
        lineage=lineage,
        training_data={
            "batches": lineage["batches"],
            "snapshot_hash": lineage["snapshot_hash"],
            "train_rows": params.get("train_rows"),
            "holdout_rows": params.get("holdout_rows"),
            "window": run.data.tags.get("mlops.training_window"),
        },
    )
    if config is not None:
        card.description = config.description
        card.intended_use = config.intended_use
        card.owner = config.airflow.owner
        card.limitations = list(config.limitations)
        card.task, card.target = config.task, config.target
        card.estimator, card.params = config.model.estimator, dict(config.model.params)
        card.features = [f.model_dump() for f in config.features]
    if verdict is not None:
        slice_metrics = (
            {rule.metric or config.gate.primary_metric for rule in config.gate.slices} if config else set()
        )
        if config is not None and config.gate.fairness is not None:
            slice_metrics.add(config.gate.fairness.metric or config.gate.primary_metric)
        card.gate = {
            "status": verdict["status"],
            "reasons": verdict["reasons"],
            "against": _against(verdict.get("champion_version")),
            "evaluated_at": verdict.get("evaluated_at"),
            "champion_metrics": verdict.get("champion_metrics"),
            "primary_metric": verdict.get("primary_metric"),
            "slice_metrics": sorted(slice_metrics),
        }
        card.slices = verdict.get("slices") or []
    return card


def publish_card(pipeline: str, version: int) -> ModelCard:
    """Build a version's card and log it (Markdown and HTML) on its training run, replacing an older one."""
    card = build_card(pipeline, version)
    run_id = registry.get_version(pipeline, version).run_id
    mlflow_client = registry.client()
    mlflow_client.log_text(run_id, card.to_markdown(), CARD_MARKDOWN)
    mlflow_client.log_text(run_id, card.to_html(), CARD_HTML)
    registry.set_version_tags(pipeline, version, {"mlops.card": f"runs:/{run_id}/{CARD_HTML}"})
    log.info("%s v%s: model card logged (%s)", pipeline, version, CARD_HTML)
    return card


def refresh_cards(pipeline: str, versions: list[int | None]) -> list[int]:
    """Publish the cards of some versions; never raises (a card is a record, not a gate): failures are logged."""
    done = []
    for version in dict.fromkeys(v for v in versions if v is not None):
        try:
            publish_card(pipeline, int(version))
            done.append(int(version))
        except Exception:
            log.exception("%s v%s: the model card could not be refreshed", pipeline, version)
    return done
