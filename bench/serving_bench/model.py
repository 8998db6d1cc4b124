"""The model under test, the in-process floor (raw ``predict``), and the steps of one request timed alone."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchlib.repo import PIPELINES_DIR, scrub_environ
from benchlib.timing import median_call

from serving_bench import BATCH_SIZES, PIPELINE

# --- the model ------------------------------------------------------------------------------------------------


@dataclass
class Trained:
    """The champion under test: its version, config, the rows to send (JSON-ready dicts) and the setup time."""

    version: int
    config: Any
    records: list[dict[str, float]]  # feature rows as JSON-ready dicts, the order of the generated batch
    seconds: float


def set_environment(home: Path) -> None:
    """Point this process (and the servers started from it) at a fresh home; nothing else leaks in."""
    scrub_environ()
    os.environ["MLOPS_HOME"] = str(home)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{home / 'mlflow.db'}"
    os.environ["MLOPS_PIPELINES_DIR"] = str(PIPELINES_DIR)


def train_and_promote(home: Path) -> Trained:
    """Generate one batch, ingest, validate, train, register and promote it: version 1 is the champion."""
    import pandas as pd

    from mlops import registry
    from mlops.config import load_config
    from mlops.data import batches
    from mlops.ml import training
    from mlops_datagen import generate_batches

    started = time.perf_counter()
    config = load_config(PIPELINES_DIR / f"{PIPELINE}.yaml")
    (path,) = generate_batches(PIPELINE, home / "landing" / PIPELINE, batches=1)
    batch = batches.ingest_batch(config, str(path))
    outcome = batches.validate_and_file(config, batch)
    result = training.train_model(config, outcome.batch)
    version = registry.register_version(config.name, result.model_uri, result.run_id, {"bench": "serving"})
    registry.promote(
        config.name, version, None, audit={"by": "bench/serving_benchmark.py", "reason": "benchmark"}
    )
    frame = training.prepare_frame(pd.read_csv(path), config)[config.feature_names]
    records = frame.to_dict(orient="records")
    if len(records) < max(BATCH_SIZES):
        raise RuntimeError(f"the generated batch holds {len(records)} rows; need {max(BATCH_SIZES)}")
    return Trained(version, config, records, time.perf_counter() - started)


# --- the floor -------------------------------------------------------------------------------------------------


@dataclass
class Floor:
    """Raw ``model.predict`` in this process: the floor a server's cost is compared with."""

    calls: int
    one_row: float  # seconds, median of one call
    hundred_rows: float
    one_row_quick: float  # under the sklearn settings our server uses (context only)
    hundred_rows_quick: float
    other_cores: float = 0.0  # what other processes used meanwhile

    @property
    def per_row(self) -> float:
        return self.hundred_rows / 100


def measure_floor(model: Any, trained: Trained, calls: int) -> Floor:
    """Median time of ``model.predict`` on a DataFrame of 1 and of 100 rows, in this process."""
    import pandas as pd
    import sklearn

    names = trained.config.feature_names
    one = pd.DataFrame.from_records(trained.records[:1], columns=names)
    hundred = pd.DataFrame.from_records(trained.records[:100], columns=names)
    result = [median_call(lambda f=f: model.predict(f), calls) for f in (one, hundred)]
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        quick = [median_call(lambda f=f: model.predict(f), calls) for f in (one, hundred)]
    return Floor(calls, result[0], result[1], quick[0], quick[1])


def raw_predictions(model: Any, trained: Trained, rows: int) -> list[Any]:
    """What ``model.predict`` answers for the first ``rows`` rows: what every server must answer too."""
    import pandas as pd

    frame = pd.DataFrame.from_records(trained.records[:rows], columns=trained.config.feature_names)
    return model.predict(frame).tolist()


# --- where a request's time goes, without HTTP -------------------------------------------------------------------


def request_steps(trained: Trained, calls: int) -> dict[int, dict[str, float]]:
    """Median seconds of each step our server takes for one request of 1 and of 100 rows, in this process.

    The same functions the server calls, on the same version (loaded as the server loads it); what HTTP,
    uvicorn, FastAPI, the micro-batcher's hand-offs, the inference log and the metrics add is not in here.
    """
    import numpy as np
    import sklearn

    from mlops.serving.holder import CHAMPION, load_version

    loaded = load_version(trained.config, trained.version, CHAMPION)
    steps: dict[int, dict[str, float]] = {}
    for rows in BATCH_SIZES:
        body = json.dumps({"records": trained.records[:rows]}).encode()
        parsed = loaded.schema.parse(body)
        frame = parsed.frame
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            predicted = loaded.model.predict(frame)
            timings = {
                "`json.loads` of the body": median_call(lambda b=body: json.loads(b), calls),
                "`InputSchema.parse` (json.loads + checks + arrays)": median_call(
                    lambda b=body: loaded.schema.parse(b), calls
                ),
                "`ParsedInput.frame` (DataFrame)": median_call(lambda p=parsed: p.frame, calls),
                "`model.predict` (server's sklearn settings)": median_call(
                    lambda f=frame: loaded.model.predict(f), calls
                ),
            }
        answer = {
            "predictions": np.asarray(predicted).tolist(),
            "model_version": loaded.version,
            "model": loaded.name,
            "request_id": "0" * 32,
        }
        timings["answer: `tolist` + `json.dumps`"] = median_call(
            lambda a=answer, p=predicted: (
                np.asarray(p).tolist(),
                json.dumps(a, separators=(",", ":"), allow_nan=False),
            ),
            calls,
        )
        steps[rows] = timings
    return steps
