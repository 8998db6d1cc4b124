"""Deployment: promote a gated challenger to ``champion`` with compare-and-set, and audit it.

The model server, smoke test, canary and rollback build on this (see the model server issue).
"""

from __future__ import annotations

import logging
from typing import Any

from mlops import registry

log = logging.getLogger(__name__)


def promote_challenger(
    pipeline: str,
    version: int,
    expected_champion: int | None,
    *,
    actor: str,
    reason: str,
    evidence: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Make ``version`` the champion if the champion is still ``expected_champion``; returns the audit entry.

    Raises:
        PromotionConflict: someone else promoted in between; nothing changed.
    """
    return registry.promote(
        pipeline,
        version,
        expected_champion,
        audit={"by": actor, "reason": reason, "evidence": evidence or {}},
    )
