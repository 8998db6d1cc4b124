"""Agreement: every column's decision, method, threshold and score, plain Evidently's against ours."""

from __future__ import annotations

from typing import Any

from monitoring_bench import SCORE_TOLERANCE
from monitoring_bench.frames import columns


def plain_decision(column: dict[str, Any]) -> bool:
    """Evidently's decision: its drift test's status; without one, the score against the threshold."""
    from mlops.config import P_VALUE_METHODS

    if column["status"] in ("FAIL", "SUCCESS"):
        return column["status"] == "FAIL"
    if column["method"] in P_VALUE_METHODS:
        return column["score"] < column["threshold"]
    return column["score"] >= column["threshold"]


def compare(plain: dict[str, Any], ours: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """Per-column rows of both contenders' results, and every difference in decision, method or score."""
    rows, differences = [], []
    for spec in columns():
        name = spec.name
        theirs, mine = plain["columns"].get(name), ours["columns"].get(name)
        if theirs is None or mine is None:
            differences.append(f"{name}: missing from {'plain Evidently' if theirs is None else 'ours'}")
            continue
        theirs_drifted = plain_decision(theirs)
        gap = abs(theirs["score"] - mine["score"])
        relative = gap / max(abs(theirs["score"]), 1e-300)
        row = {
            "column": name,
            "kind": spec.kind,
            "expect": spec.expect,
            "description": spec.description,
            "plain_method": theirs["method"],
            "ours_method": mine["method"],
            "plain_threshold": theirs["threshold"],
            "ours_threshold": mine["threshold"],
            "plain_score": theirs["score"],
            "ours_score": mine["score"],
            "score_gap": gap,
            "plain_drifted": theirs_drifted,
            "ours_drifted": mine["drifted"],
            "plain_status": theirs["status"],
        }
        problems = []
        if theirs["status"] not in ("FAIL", "SUCCESS"):
            problems.append(f"plain Evidently has no drift test status ({theirs['status']})")
        if theirs_drifted != mine["drifted"]:
            problems.append(
                f"drift: plain {'yes' if theirs_drifted else 'no'}, ours {'yes' if mine['drifted'] else 'no'}"
            )
        if theirs["method"] != mine["method"]:
            problems.append(f"method: plain {theirs['method']}, ours {mine['method']}")
        if theirs["threshold"] != mine["threshold"]:
            problems.append(f"threshold: plain {theirs['threshold']}, ours {mine['threshold']}")
        if relative > SCORE_TOLERANCE:
            problems.append(f"score: plain {theirs['score']!r}, ours {mine['score']!r}")
        row["same"] = not problems
        rows.append(row)
        differences.extend(f"{name}: {problem}" for problem in problems)
    return rows, differences
