"""The pieces every section of the pipeline config shares: the strict base model and the schedule check.

Light on purpose (imported at DAG parse time): pydantic and croniter only.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

CRON_PRESETS = {"@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly"}


class Strict(BaseModel):
    """A config section: unknown keys are errors (a typo never passes silently), and values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def check_schedule(value: str | None) -> str | None:
    """``value`` if it is null, a preset or a five-field cron expression; else a readable ValueError."""
    if value is None or value in CRON_PRESETS:
        return value
    from croniter import croniter

    if len(value.split()) != 5 or not croniter.is_valid(value):
        raise ValueError(
            f"'{value}' is not a schedule: use null, a preset ({', '.join(sorted(CRON_PRESETS))}) "
            "or a five-field cron expression like '0 3 * * *'"
        )
    return value
