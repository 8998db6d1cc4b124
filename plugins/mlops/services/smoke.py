"""The smoke test of a model version, run in its own process (TFX's InfraValidator idea).

``python -m mlops.services.smoke <pipeline> <version> --rows N`` loads the version as the model server would
(its files checked against the digest recorded at registration first), predicts its input example and a
sample of its holdout, checks the output and times the call, and prints one JSON object. Running it apart
means a model that crashes the interpreter, hangs or eats memory cannot hurt the caller: the parent only
reads the verdict (see :func:`mlops.services.deploy.smoke_test`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any


def check_version(pipeline: str, version: int, rows: int) -> dict[str, Any]:
    """Load, predict and check; returns ``{"passed", "reasons", "load_seconds", "predict_ms", "rows"}``."""
    import numpy as np
    from mlflow.models import Model

    from mlops import registry
    from mlops.ml import training

    reasons: list[str] = []
    started = time.perf_counter()
    # As the model server loads it: checked against the digest recorded at registration, then read locally.
    with registry.verified_model(pipeline, version) as folder:
        model = registry.load_model_folder(folder)
        signature = Model.load(str(folder)).signature
    load_seconds = time.perf_counter() - started
    run_id = registry.get_version(pipeline, version).run_id
    holdout = training.load_holdout(run_id)
    features = [spec.name for spec in signature.inputs.inputs] if signature else list(holdout.columns)
    target = next(c for c in holdout.columns if c not in features)
    sample = holdout.sample(n=min(rows, len(holdout)), random_state=0) if len(holdout) else holdout
    example = sample.head(1)[features]
    single = np.asarray(model.predict(example))  # also the warm-up: the first call pays for lazy set-up
    if len(single) != 1 or (single.dtype.kind in "fc" and not np.all(np.isfinite(single))):
        reasons.append(f"one-row prediction is {single.tolist()!r}, not one finite value")
    started = time.perf_counter()
    predictions = np.asarray(model.predict(sample[features]))
    predict_ms = (time.perf_counter() - started) * 1000
    if len(predictions) != len(sample):
        reasons.append(f"{len(predictions)} predictions for {len(sample)} rows")
    if predictions.dtype.kind in "fc" and not np.all(np.isfinite(predictions)):
        reasons.append(f"{int(np.sum(~np.isfinite(predictions)))} predictions are NaN or infinite")
    classes = getattr(model, "classes_", None)
    if classes is not None:
        known = {str(c) for c in classes} | {str(v) for v in holdout[target].unique()}
        unknown = sorted({str(p) for p in predictions} - known)
        if unknown:
            reasons.append(f"predicted labels never seen in training: {unknown[:5]}")
    return {
        "passed": not reasons,
        "reasons": reasons,
        "load_seconds": round(load_seconds, 3),
        "predict_ms": round(predict_ms, 3),
        "rows": len(sample),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops.services.smoke", description=__doc__)
    parser.add_argument("pipeline")
    parser.add_argument("version", type=int)
    parser.add_argument("--rows", type=int, default=100)
    args = parser.parse_args(argv)
    try:
        result = check_version(args.pipeline, args.version, args.rows)
    except Exception as exc:  # the verdict of a smoke test is data for the parent, whatever went wrong
        result = {
            "passed": False,
            "reasons": [f"{type(exc).__name__}: {exc}"[:500]],
            "load_seconds": math.nan,
        }
    sys.stdout.write("SMOKE " + json.dumps(result, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
