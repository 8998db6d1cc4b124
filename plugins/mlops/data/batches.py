"""The life of a data batch: ingest (content-addressed copy), validate, then accept or quarantine.

Layout in the data store (``MLOPS_STORE_URI``)::

    <store>/<pipeline>/incoming/<hash>.<ext>               ingested, not yet validated
    <store>/<pipeline>/accepted/<hash>.<ext> + .json       passed validation (manifest beside it)
    <store>/<pipeline>/quarantine/<hash>/<name>            failed: the batch, its result and report
    <store>/<pipeline>/validation/<hash>/                  every validation's result (JSON) and report (HTML)

A batch is immutable and named by its SHA-256, so ingesting the same file twice is harmless. The source file is
never modified or deleted: nothing a user hands us is lost.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import PurePosixPath
from urllib.parse import urlparse

from mlops.config import PipelineConfig, settings
from mlops.data import storage
from mlops.errors import DataValidationError, StorageError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Batch:
    """One ingested batch; JSON-able so it can travel through XCom."""

    pipeline: str
    uri: str
    source: str
    content_hash: str
    format: str
    size_bytes: int
    ingested_at: str
    rows: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Batch:
        return cls(**data)


def _format_of(uri: str, declared: str) -> str:
    if declared != "auto":
        return declared
    suffix = PurePosixPath(urlparse(uri).path).suffix.lower()
    return "parquet" if suffix in (".parquet", ".pq") else "csv"


def pipeline_root(pipeline: str) -> str:
    return storage.join(settings.store_uri(), pipeline)


def ingest_batch(config: PipelineConfig, data_uri: str | None, when: date | datetime | None = None) -> Batch:
    """Copy the batch at ``data_uri`` (default: the config's source) into the store under its content hash."""
    source = storage.resolve_uri(data_uri or config.data.source, when)
    if not storage.exists(source):
        raise StorageError(f"{source}: no batch there (pipeline '{config.name}', data_uri {data_uri!r})")
    digest = storage.content_hash(source)
    fmt = _format_of(source, config.data.format)
    ext = "parquet" if fmt == "parquet" else "csv"
    accepted = storage.join(pipeline_root(config.name), "accepted", f"{digest}.{ext}")
    target = (
        accepted
        if storage.exists(accepted)
        else storage.join(pipeline_root(config.name), "incoming", f"{digest}.{ext}")
    )
    if not storage.exists(target):
        storage.copy(source, target)
    size = storage.size(target)
    batch = Batch(
        pipeline=config.name,
        uri=target,
        source=source,
        content_hash=digest,
        format=fmt,
        size_bytes=size,
        ingested_at=datetime.now(UTC).isoformat(timespec="microseconds"),  # keeps the order within a second
    )
    log.info("Ingested %s as %s (%d bytes, sha256 %s)", source, target, size, digest[:12])
    return batch


@dataclass(frozen=True)
class ValidationOutcome:
    batch: Batch
    success: bool
    summary: str
    result_uri: str
    report_uri: str
    quarantine_uri: str | None

    def to_dict(self) -> dict:
        data = asdict(self)
        data["batch"] = self.batch.to_dict()
        return data


def validate_and_file(config: PipelineConfig, batch: Batch) -> ValidationOutcome:
    """Validate a batch; accept it, or quarantine it with its result and raise ``DataValidationError``.

    The result (JSON) and a readable report (HTML) are saved first, whatever the verdict.
    """
    from mlops.data import validation

    try:
        with storage.local_file(batch.uri) as path:
            frame = validation.read_batch(path, batch.format)
        report = validation.validate_frame(frame, config)
        rows = len(frame)
    except DataValidationError as exc:
        report = validation.ValidationReport.for_unreadable(config.name, str(exc))
        rows = 0
    folder = storage.join(pipeline_root(config.name), "validation", batch.content_hash)
    result_uri = storage.write_text(storage.join(folder, "result.json"), report.to_json())
    report_uri = storage.write_text(storage.join(folder, "report.html"), report.to_html())
    batch = Batch(**{**batch.to_dict(), "rows": rows})
    name = PurePosixPath(urlparse(batch.uri).path).name
    if report.success:
        accepted = storage.join(pipeline_root(config.name), "accepted", name)
        if batch.uri != accepted:
            storage.move(batch.uri, accepted)
        manifest = accepted.rsplit(".", 1)[0] + ".json"
        # Re-ingesting a known batch keeps its place in the history (its first ingestion time).
        first_seen = (
            json.loads(storage.read_text(manifest))["ingested_at"] if storage.exists(manifest) else None
        )
        batch = Batch(**{**batch.to_dict(), "uri": accepted, "ingested_at": first_seen or batch.ingested_at})
        storage.write_text(manifest, json.dumps(batch.to_dict(), indent=2))
        return ValidationOutcome(batch, True, report.summary(), result_uri, report_uri, None)

    quarantine = storage.join(pipeline_root(config.name), "quarantine", batch.content_hash)
    # A batch accepted once but failing now (say the rules changed) leaves the accepted set with its manifest.
    manifest = batch.uri.rsplit(".", 1)[0] + ".json"
    if "/accepted/" in batch.uri and storage.exists(manifest):
        storage.delete(manifest)
    storage.copy(result_uri, storage.join(quarantine, "result.json"))
    storage.copy(report_uri, storage.join(quarantine, "report.html"))
    storage.write_text(
        storage.join(quarantine, "batch.json"),
        json.dumps({**batch.to_dict(), "summary": report.summary()}, indent=2),
    )
    storage.move(batch.uri, storage.join(quarantine, name))
    # What failed comes first: alerts show only the start of the message.
    summary = (
        f"Validation failed: {report.summary()} The batch {batch.source} is quarantined at {quarantine}; "
        f"full result: {result_uri}; report: {report_uri}."
    )
    raise DataValidationError(
        summary, quarantine_uri=quarantine, failed=[f.expectation for f in report.failed]
    )


def accepted_batches(pipeline: str) -> list[Batch]:
    """Every accepted batch of a pipeline, oldest first."""
    batches = []
    for uri in storage.list_uris(storage.join(pipeline_root(pipeline), "accepted"), ".json"):
        batches.append(Batch.from_dict(json.loads(storage.read_text(uri))))
    return sorted(batches, key=lambda b: (b.ingested_at, b.content_hash))
