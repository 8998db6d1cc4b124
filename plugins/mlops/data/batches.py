"""The life of a data batch: ingest (content-addressed copy), validate, then accept or quarantine.

Layout in the data store (``MLOPS_STORE_URI``)::

    <store>/<pipeline>/incoming/<hash>.<ext>               ingested, not yet validated
    <store>/<pipeline>/accepted/<hash>.<ext> + .json       passed validation (manifest beside it)
    <store>/<pipeline>/quarantine/<hash>/<name>            failed: the batch, its result and report
    <store>/<pipeline>/validation/<hash>/                  every validation's result (JSON) and report (HTML)
    <store>/<pipeline>/baseline/baseline.json              the recorded baseline (:mod:`mlops.data.baseline`)

A batch is immutable and named by its SHA-256, so ingesting the same file twice is harmless. The source file is
never modified or deleted: nothing a user hands us is lost.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

from mlops.config import PipelineConfig, settings
from mlops.data import storage
from mlops.errors import DataAccessError, DataValidationError, StorageError

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
    #: What its validation flagged without failing it (the baseline's checks in warn mode), one line each.
    warnings: list[str] = field(default_factory=list)

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


def landing_roots(config: PipelineConfig) -> list[str]:
    """Where a run of ``config`` may ingest from, as URIs (``data.landing_roots`` describes the defaults)."""
    home, store = settings.mlops_home(), urlparse(settings.store_uri())
    # The drop folder beside the store: <home>/landing for the embedded store, s3://b/landing for s3://b/store.
    beside = PurePosixPath(unquote(store.path) or "/").parent / "landing"
    beside_store = f"s3://{store.netloc}{beside}" if store.scheme == "s3" else Path(beside).resolve().as_uri()
    roots = [(home / "landing").as_uri(), beside_store, storage.join(pipeline_root(config.name), "retrain")]
    before_template = config.data.source.split("{", 1)[0].rpartition("/")[0]  # the source's folder or prefix
    if before_template:
        folder = storage.resolve_uri(settings.data_location(before_template))
        parsed = urlparse(folder)
        local = Path(unquote(parsed.path) or "/").resolve() if parsed.scheme == "file" else None
        if local not in (home, Path("/")):  # a source at the top of the home or the disk opens too much
            roots.append(folder)
    roots += [storage.resolve_uri(root) for root in [*config.data.landing_roots, *settings.data_roots()]]
    return list(dict.fromkeys(roots))


def batch_source(config: PipelineConfig, data_uri: str | None, when: date | datetime | None = None) -> str:
    """The URI a run of ``config`` reads its batch from (``data_uri``, default the config's source, with
    ``{ds}`` resolved), checked against :func:`landing_roots` without reading anything at it.

    Raises:
        DataAccessError: the URI is outside the roots (permanent: the task fails without retries).
    """
    roots = landing_roots(config)
    try:
        location = settings.data_location(data_uri or config.data.source)
        return storage.confined(storage.resolve_uri(location, when), roots)
    except DataAccessError as exc:
        raise DataAccessError(
            f"pipeline '{config.name}' refuses the batch {exc}. Its landing roots: {', '.join(roots)}. Put the "
            "batch under one of them, or add a root: 'data.landing_roots' in the pipeline's YAML, or "
            "MLOPS_DATA_ROOTS (comma-separated) for the whole install."
        ) from None


def ingest_batch(config: PipelineConfig, data_uri: str | None, when: date | datetime | None = None) -> Batch:
    """Copy the batch at ``data_uri`` (default: the config's source) into the store under its content hash.

    Only a batch under the pipeline's landing roots (:func:`landing_roots`) is read: anything else raises
    :class:`~mlops.errors.DataAccessError` (permanent: the task fails without retries) before its existence is
    even checked, and nothing is copied.
    """
    source = batch_source(config, data_uri, when)
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


def _where_it_is_now(config: PipelineConfig, batch: Batch) -> Batch:
    """The ingested batch where it is now. Two runs of a pipeline can ingest the same bytes at once (the run
    Airflow creates when a person unpauses the DAG and the run they trigger, say): both get the same
    content-addressed ``incoming/`` file, and the first to validate files it. The second reads it where the
    first put it: ``accepted/``, or fails as the first did when it was quarantined.
    """
    if storage.exists(batch.uri):
        return batch
    root, name = pipeline_root(config.name), PurePosixPath(urlparse(batch.uri).path).name
    accepted = storage.join(root, "accepted", name)
    if storage.exists(accepted):
        log.info("Batch %s was accepted by another run meanwhile: reading %s", batch.source, accepted)
        return Batch(**{**batch.to_dict(), "uri": accepted})
    quarantine = storage.join(root, "quarantine", batch.content_hash)
    if storage.exists(storage.join(quarantine, name)):
        raise DataValidationError(
            f"batch {batch.source} was quarantined by another run of '{config.name}' meanwhile; its result: "
            f"{storage.join(quarantine, 'result.json')}"
        )
    return batch  # gone for another reason: reading it says so


def validate_and_file(config: PipelineConfig, batch: Batch) -> ValidationOutcome:
    """Validate a batch; accept it, or quarantine it with its result and raise ``DataValidationError``.

    The result (JSON) and a readable report (HTML) are saved first, whatever the verdict. A pipeline without
    ``expectations.columns`` rules is also checked against its recorded baseline, and its first accepted
    batch becomes that baseline (:mod:`mlops.data.baseline`); in warn mode, what the baseline flags is
    logged as a warning and kept on the accepted batch (``Batch.warnings``).
    """
    from mlops.data import baseline as baselines
    from mlops.data import validation

    batch = _where_it_is_now(config, batch)
    baseline = baselines.active_baseline(config)
    frame = None
    try:
        with storage.local_file(batch.uri) as path:
            frame = validation.read_batch(path, batch.format, config)
        report = validation.validate_frame(frame, config, baseline=baseline)
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
            try:
                storage.move(batch.uri, accepted)
            except StorageError:
                if not storage.exists(accepted):
                    raise
                # another run accepted the same bytes meanwhile (a content-addressed name): nothing to move
        manifest = accepted.rsplit(".", 1)[0] + ".json"
        # Re-ingesting a known batch keeps its place in the history (its first ingestion time).
        first_seen = (
            json.loads(storage.read_text(manifest))["ingested_at"] if storage.exists(manifest) else None
        )
        warnings = [f"{w.column}: {w.detail}" if w.column else w.detail for w in report.warnings]
        batch = Batch(
            **{
                **batch.to_dict(),
                "uri": accepted,
                "ingested_at": first_seen or batch.ingested_at,
                "warnings": warnings,
            }
        )
        storage.write_text(manifest, json.dumps(batch.to_dict(), indent=2))
        if warnings:
            log.warning(
                "Batch %s of %s passed with %d baseline warning(s): %s. Report: %s",
                batch.source,
                config.name,
                len(warnings),
                "; ".join(warnings),
                report_uri,
            )
        if baseline is None and frame is not None and baselines.applies(config):
            baselines.record_baseline(config, frame, batch=batch.content_hash, source=batch.source)
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
