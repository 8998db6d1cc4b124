"""The models a server holds, and how a new version replaces the old one without dropping a request.

``ModelHolder`` follows the registry aliases ``champion`` (and ``canary`` when the deploy strategy is
``canary`` or ``shadow``) by polling, and on demand (``refresh``). When an alias points at a new version, that
version is downloaded, checked against the digest recorded at registration, loaded and smoke-tested (its
logged input example must predict, with finite values and one per row) on a background thread while the old
one keeps serving; then it replaces the old one with a single reference assignment. A version that fails to
load (a tampered artifact, one without a digest) or to pass the smoke test never serves: the old one stays,
the error is kept (``/model``, ``/metrics``) and ``on_failure`` is called once for that version.

MLflow leaves the files it downloads behind; every load downloads into a temporary folder that is deleted as
soon as the model is in memory.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlops import registry
from mlops.errors import MlopsError
from mlops.registry.integrity import MANIFEST_TAG
from mlops.serving.inputs import InputSchema
from mlops.serving.ranges import RangeCheck

if TYPE_CHECKING:
    import pandas as pd

    from mlops.config import PipelineConfig

log = logging.getLogger(__name__)

CHAMPION = registry.CHAMPION
CANARY = "canary"
#: Version tags that are not lineage (the audit trail is long and has its own view; so is the file manifest:
#: the digest stays).
_NOT_LINEAGE = (registry.AUDIT_PREFIX, MANIFEST_TAG)


class ModelLoadError(MlopsError):
    """A model version could not be loaded, or failed its smoke test; the previous version serves on."""

    code = "MODEL_LOAD_FAILED"


@dataclass(frozen=True)
class LoadedModel:
    """One model version in memory, ready to predict."""

    name: str
    version: int
    alias: str
    model: Any
    signature: Any
    schema: InputSchema
    input_example: pd.DataFrame | None
    run_id: str | None
    tags: dict[str, str]
    loaded_at: datetime
    load_seconds: float
    is_classifier: bool = False
    #: The version's input ranges (config bounds and its reference's range); None: the server's config bounds.
    ranges: RangeCheck | None = None

    def describe(self) -> dict[str, Any]:
        """JSON-able summary for ``GET /model``."""
        return {
            "version": self.version,
            "alias": self.alias,
            "loaded_at": self.loaded_at.isoformat(timespec="milliseconds"),
            "load_seconds": round(self.load_seconds, 3),
            "run_id": self.run_id,
            "lineage": self.tags,
            "inputs": self.schema.describe(),
            **({"input_ranges": self.ranges.describe()} if self.ranges is not None else {}),
        }


@dataclass(frozen=True)
class LoadFailure:
    alias: str
    version: int | None
    message: str
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_dict(self) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "version": self.version,
            "message": self.message,
            "at": self.at.isoformat(timespec="milliseconds"),
        }


Loader = Callable[["PipelineConfig", int, str], LoadedModel]


def load_version(config: PipelineConfig, version: int, alias: str) -> LoadedModel:
    """Download, verify (:func:`mlops.registry.verified_model_path`) and load version ``version`` of the
    pipeline's registered model (not yet smoke-tested). A version whose files do not match its digest raises
    :class:`mlops.registry.ModelIntegrityError`: it never serves, the holder alerts and the old one serves on."""
    from mlflow.models import Model

    started = time.perf_counter()
    client = registry.client()  # also points mlflow at the configured tracking URI
    details = client.get_model_version(config.name, str(version))
    with tempfile.TemporaryDirectory(prefix="mlops-serving-") as folder:
        # Checked against the digest recorded at registration, then loaded from this folder only.
        local = str(registry.verified_model_path(config.name, version, folder))
        metadata = Model.load(local)
        model = registry.load_model_folder(Path(local))
        try:
            example = metadata.load_input_example(local)
        except Exception as exc:
            raise ModelLoadError(f"the input example of v{version} cannot be read: {exc}") from exc
        ranges = RangeCheck.for_version(config, version, _reference(config, client, details.run_id, folder))
    tags = {k: v for k, v in (details.tags or {}).items() if not k.startswith(_NOT_LINEAGE)}
    from sklearn.base import is_classifier

    return LoadedModel(
        name=config.name,
        version=int(version),
        alias=alias,
        model=model,
        signature=metadata.signature,
        schema=InputSchema.from_config(config, metadata.signature),
        input_example=example,
        run_id=details.run_id,
        tags=tags,
        loaded_at=datetime.now(UTC),
        load_seconds=time.perf_counter() - started,
        is_classifier=bool(is_classifier(model)),
        ranges=ranges,
    )


def _reference(config: PipelineConfig, client: Any, run_id: str | None, folder: str) -> pd.DataFrame | None:
    """The version's monitoring reference (its input ranges), or None when it has none or cannot be read: the
    version then serves with the config's bounds only (logged, and in ``GET /model``)."""
    if config.serving.out_of_range == "off" or run_id is None:
        return None
    import pandas as pd

    from mlops.ml.reference import REFERENCE_ARTIFACT

    try:
        return pd.read_parquet(client.download_artifacts(run_id, REFERENCE_ARTIFACT, folder))
    except Exception as exc:  # a version trained before references existed, an unreadable file
        log.warning(
            "No reference for the input ranges of run %s (%s: %s): the config's bounds only",
            run_id,
            type(exc).__name__,
            str(exc)[:300],
        )
        return None


def smoke_test(loaded: LoadedModel) -> None:
    """Predict the version's input example through the serving input path; raise ModelLoadError if wrong."""
    example = loaded.input_example
    if example is None or len(example) == 0:
        raise ModelLoadError(f"v{loaded.version} has no input example to smoke-test it with")
    columns = {str(name): example[name].tolist() for name in example.columns}
    try:
        parsed = loaded.schema.parse_payload({"inputs": columns})
    except MlopsError as exc:
        raise ModelLoadError(f"the input example of v{loaded.version} breaks its own schema: {exc}") from exc
    try:
        predicted = np.asarray(loaded.model.predict(parsed.frame))
    except Exception as exc:
        raise ModelLoadError(
            f"v{loaded.version} cannot predict its input example: {type(exc).__name__}: {exc}"
        ) from exc
    if predicted.ndim == 0 or len(predicted) != parsed.rows:
        raise ModelLoadError(
            f"v{loaded.version} returned {predicted.size} predictions for {parsed.rows} example rows"
        )
    if predicted.dtype.kind in "fc" and not np.isfinite(predicted).all():
        bad = int((~np.isfinite(predicted)).sum())
        raise ModelLoadError(f"v{loaded.version} returned {bad} non-finite predictions for its input example")
    if predicted.dtype.kind == "O" and any(p is None or p != p for p in predicted.ravel()):
        raise ModelLoadError(f"v{loaded.version} returned missing predictions for its input example")


class ModelHolder:
    """The champion (and canary) of one pipeline, swapped in atomically once a new version is ready.

    Args:
        config: The pipeline.
        on_failure: Called with a message when a version fails to load or to pass its smoke test (once per
            version and alias; again only after ``refresh(force=True)``).
        loader: How a version is loaded (default :func:`load_version`); tests can replace it.
        poll_interval: Seconds between alias checks (default ``serving.poll_interval_seconds``).

    Example:
        >>> holder = ModelHolder(config)                  # doctest: +SKIP
        >>> holder.refresh(); holder.wait(60)             # doctest: +SKIP
        >>> holder.champion.version                       # doctest: +SKIP
        3
    """

    def __init__(
        self,
        config: PipelineConfig,
        *,
        on_failure: Callable[[str], None] | None = None,
        loader: Loader | None = None,
        poll_interval: float | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.on_failure = on_failure
        self.poll_interval = poll_interval or config.serving.poll_interval_seconds
        self._loader = loader or load_version
        # Read without a lock by the request path: each is replaced by one assignment, never mutated.
        self.champion: LoadedModel | None = None
        self.canary: LoadedModel | None = None
        self._lock = threading.Lock()
        self._wanted: dict[str, int | None] = {}
        self._loading: dict[tuple[str, int], threading.Thread] = {}
        self._failed: dict[str, int] = {}
        self.errors: dict[str, LoadFailure] = {}  # the current problem of each alias
        self.last_error: LoadFailure | None = None
        self.load_failures: dict[str, int] = {CHAMPION: 0, CANARY: 0}
        self.loads: dict[str, int] = {CHAMPION: 0, CANARY: 0}
        self.checked_at: datetime | None = None  # the last time the aliases were read
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    @property
    def aliases(self) -> tuple[str, ...]:
        """The aliases this server follows: ``champion``, and ``canary`` for the canary and shadow strategies."""
        return (CHAMPION, CANARY) if self.config.deploy.strategy in ("canary", "shadow") else (CHAMPION,)

    def current(self, alias: str) -> LoadedModel | None:
        return self.champion if alias == CHAMPION else self.canary

    def loading(self) -> list[tuple[str, int]]:
        """(alias, version) of the loads in progress."""
        with self._lock:
            return list(self._loading)

    # Following the aliases ---------------------------------------------------------------------------------
    def refresh(self, *, force: bool = False) -> None:
        """Resolve every followed alias now and start loading what changed (``force``: retry failed versions)."""
        for alias in self.aliases:
            self.load(alias, force=force)
        self.checked_at = datetime.now(UTC)

    def load(self, alias: str, *, force: bool = False) -> threading.Thread | None:
        """Resolve ``alias``; if it points at a version not loaded yet, load that one in the background.

        Returns the loading thread, or None when there is nothing to load.
        """
        try:
            version = registry.alias_version(self.name, alias)
        except Exception as exc:  # the registry is down: keep serving what we have
            self._record(alias, None, f"cannot resolve alias '{alias}' of '{self.name}': {exc}", alert=False)
            return None
        with self._lock:
            self._wanted[alias] = version
            if version is None:
                if alias == CANARY:
                    self.canary = None
                    self.errors.pop(CANARY, None)
                elif self.champion is not None:
                    self.errors[alias] = LoadFailure(
                        alias,
                        None,
                        f"alias '{alias}' of '{self.name}' no longer exists; "
                        f"still serving v{self.champion.version}",
                    )
                return None
            loaded = self.current(alias)
            if loaded is not None and loaded.version == version:
                self.errors.pop(alias, None)  # whatever went wrong before, the alias points at what serves
                return None
            if (alias, version) in self._loading:
                return None
            if self._failed.get(alias) == version and not force:
                return None
            thread = threading.Thread(
                target=self._load_and_swap,
                args=(alias, version),
                name=f"mlops-serving-load-{self.name}-{alias}-v{version}",
                daemon=True,
            )
            self._loading[(alias, version)] = thread
        thread.start()
        return thread

    def _load_and_swap(self, alias: str, version: int) -> None:
        try:
            loaded = self._loader(self.config, version, alias)
            smoke_test(loaded)
        except Exception as exc:
            serving = self.current(alias)
            keeps = f"v{serving.version} serves on" if serving else "no model serves this alias yet"
            message = (
                f"'{self.name}' v{version} (alias {alias}) could not be loaded: {_summary(exc)}; {keeps}"
            )
            log.error("%s", message, exc_info=not isinstance(exc, MlopsError))
            with self._lock:
                self._failed[alias] = version
                self.load_failures[alias] = self.load_failures.get(alias, 0) + 1
            self._record(alias, version, message, alert=True)
            with self._lock:  # only now: whoever waits for the load sees the error and the alert done
                self._loading.pop((alias, version), None)
            return
        with self._lock:
            self._loading.pop((alias, version), None)
            if self._wanted.get(alias) != version:
                log.info(
                    "'%s' v%s loaded but alias %s moved on meanwhile: dropped", self.name, version, alias
                )
                return
            # The swap: one reference assignment. A batch in progress keeps the reference it took.
            if alias == CHAMPION:
                self.champion = loaded
            else:
                self.canary = loaded
            self.loads[alias] = self.loads.get(alias, 0) + 1
            self._failed.pop(alias, None)
            self.errors.pop(alias, None)
        log.info(
            "'%s' v%s now serves as %s (loaded and smoke-tested in %.2fs)",
            self.name,
            version,
            alias,
            loaded.load_seconds,
        )

    def _record(self, alias: str, version: int | None, message: str, *, alert: bool) -> None:
        failure = LoadFailure(alias, version, message)
        with self._lock:
            self.errors[alias] = failure
            self.last_error = failure
        if not alert:
            log.warning("%s", message)
            return
        if self.on_failure is not None:
            try:
                self.on_failure(message)
            except Exception:
                log.exception("The on_failure callback of the model server of '%s' failed", self.name)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the loads in progress; True when none is left."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                threads = list(self._loading.values())
            if not threads:
                return True
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            threads[0].join(remaining)

    # Polling -----------------------------------------------------------------------------------------------
    def start_polling(self) -> None:
        """Check the aliases now and then every ``poll_interval`` seconds, on a daemon thread (idempotent)."""
        with self._lock:
            if self._poller is not None:
                return
            self._stop.clear()
            self._poller = threading.Thread(
                target=self._poll, name=f"mlops-serving-poll-{self.name}", daemon=True
            )
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception:
                log.exception("Checking the aliases of '%s' failed; trying again later", self.name)
            self._stop.wait(self.poll_interval)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop polling (loads in progress finish on their own daemon threads)."""
        self._stop.set()
        poller, self._poller = self._poller, None
        if poller is not None and poller is not threading.current_thread():
            poller.join(timeout)


def _summary(exc: BaseException, limit: int = 500) -> str:
    text = str(exc) if isinstance(exc, MlopsError) else f"{type(exc).__name__}: {exc}"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
