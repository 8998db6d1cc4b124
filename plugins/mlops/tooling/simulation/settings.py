"""What a simulation runs: its settings, the policies, the constants of the replay, and its error."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mlops.errors import MlopsError

NEVER, PERIODIC, DRIFT = "never", "periodic", "drift"
POLICIES: tuple[str, ...] = (NEVER, PERIODIC, DRIFT)
#: Day 0 of the simulated clock (window ``i`` is the day ``SIMULATED_START + i days``).
SIMULATED_START = datetime(2026, 1, 1, tzinfo=UTC)
#: Every window is drawn from the 28 days of sales ending on this date (the generators' own default), so that
#: seasonality does not drift between windows: the only drift is the injected one.
STREAM_DATE = "2026-01-01"
#: How often the server writes its inference log in the simulation (the config's value when smaller).
FLUSH_SECONDS = 0.2
#: Requests in flight at once: the server gathers concurrent requests into one ``predict`` call.
CONCURRENCY = 64


class SimulationError(MlopsError):
    """The simulation cannot go on: the server did not start or answer, a window never reached the log."""

    code = "SIMULATION_ERROR"


@dataclass(frozen=True)
class SimulationSettings:
    """What to simulate. The defaults are the run whose figures are in ``docs/benchmarks.md``."""

    out: Path
    windows: int = 30
    onset: int = 20
    feature_drift: float = 1.0
    concept_drift: float = 0.5
    rows_per_window: int = 1000
    initial_rows: int = 3000
    period: int = 3
    label_delay: int = 1
    seed: int = 7
    reports: bool = False
    check_agreement: bool = False
    port: int | None = None
    policies: tuple[str, ...] = POLICIES

    def problems(self) -> list[str]:
        found = []
        if self.windows < 1:
            found.append(f"--windows must be at least 1 (got {self.windows})")
        if not 0 <= self.onset <= self.windows:
            found.append(f"--onset must be between 0 and --windows ({self.windows}); got {self.onset}")
        if self.rows_per_window < 1 or self.initial_rows < 1:
            found.append("--rows-per-window and --initial-rows must be at least 1")
        if self.period < 1:
            found.append(f"--period must be at least 1 (got {self.period})")
        if self.label_delay < 0:
            found.append(f"--label-delay must be 0 or more (got {self.label_delay})")
        if self.feature_drift < 0 or self.concept_drift < 0:
            found.append("--feature-drift and --concept-drift must be 0 or more")
        unknown = [p for p in self.policies if p not in POLICIES]
        if unknown or not self.policies:
            found.append(f"policies must be among {', '.join(POLICIES)}; got {', '.join(self.policies)}")
        return found
