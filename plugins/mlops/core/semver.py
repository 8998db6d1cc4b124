"""Semantic versions of model versions (pure): what changed between two fingerprints, and the next number."""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)


# Semantic versions ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fingerprint:
    """What decides a version's semantic version: its features, target, estimator, data and config."""

    features: str
    target: str
    estimator: str
    data_hash: str
    config_hash: str

    @property
    def family(self) -> str:
        return self.estimator.rpartition(".")[2] or self.estimator


def parse_semver(text: str) -> tuple[int, int, int]:
    """``"1.2.3"`` -> ``(1, 2, 3)``; raises ValueError for anything else."""
    parts = text.strip().split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"'{text}' is not a semantic version like 1.2.3")
    major, minor, patch = (int(p) for p in parts)
    return major, minor, patch


def next_semver(previous: str | None, before: Fingerprint | None, now: Fingerprint) -> tuple[str, str, str]:
    """(semantic version, change kind, why) of a version, from the version before it (None: the first)."""
    if previous is None or before is None:
        return "1.0.0", "initial", "first version of the model"
    major, minor, patch = parse_semver(previous)
    changes = []
    if before.features != now.features:
        changes.append("the feature set changed")
    if before.target != now.target:
        changes.append(f"the target changed ({before.target} -> {now.target})")
    if before.family != now.family:
        changes.append(f"the model family changed ({before.family} -> {now.family})")
    if changes:
        return f"{major + 1}.0.0", "major", "; ".join(changes)
    if before.data_hash != now.data_hash:
        return f"{major}.{minor + 1}.0", "minor", "retrained on new data"
    if before.config_hash != now.config_hash:
        return f"{major}.{minor + 1}.0", "minor", "retrained with a changed recipe (same features and family)"
    return f"{major}.{minor}.{patch + 1}", "patch", "rebuilt with the same data and config"


def unique_semver(semver: str, kind: str, taken: set[str]) -> str:
    """``semver`` if no other version has it, else the next free one of the same kind: a sibling of an
    earlier candidate (two challengers retrained from one champion) gets the next minor, major or patch."""
    if semver not in taken:
        return semver
    major, minor, patch = parse_semver(semver)
    parsed = [parse_semver(t) for t in taken]
    if kind == "major" or kind == "initial":
        return f"{max(p[0] for p in parsed) + 1}.0.0"
    if kind == "minor":
        return f"{major}.{max(p[1] for p in parsed if p[0] == major) + 1}.0"
    return f"{major}.{minor}.{max(p[2] for p in parsed if p[:2] == (major, minor)) + 1}"
