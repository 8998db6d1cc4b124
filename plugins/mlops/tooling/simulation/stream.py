"""The stream every policy replays (generated once), and the two clocks: simulated days and real log times."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from mlops.tooling.simulation.settings import (
    SIMULATED_START,
    STREAM_DATE,
    SimulationError,
    SimulationSettings,
)

if TYPE_CHECKING:
    import pandas as pd

    from mlops.config import PipelineConfig


@dataclass
class Stream:
    """The initial training batch and the windows, with their targets (the same for every policy)."""

    initial: pd.DataFrame
    windows: list[pd.DataFrame]
    onset: int


def make_stream(config: PipelineConfig, settings: SimulationSettings) -> Stream:
    """Generate the initial batch and every window with the pipeline's generator (:mod:`mlops_datagen`).

    Each frame has its own seed and the same calendar (``STREAM_DATE``); windows from ``onset`` on get the
    feature and concept drift.

    Raises:
        SimulationError: the pipeline has no generator.
    """
    from mlops_datagen import PIPELINES, generate_frames

    if config.name not in PIPELINES:
        raise SimulationError(
            f"pipeline '{config.name}' has no data generator; simulate one of: {', '.join(PIPELINES)}"
        )

    def frame(rows: int, seed: int, drifted: bool) -> pd.DataFrame:
        ((_, data),) = generate_frames(
            config.name,
            batches=1,
            rows=rows,
            start_date=STREAM_DATE,
            seed=seed,
            feature_drift=settings.feature_drift if drifted else 0.0,
            concept_drift=settings.concept_drift if drifted else 0.0,
        )
        return data

    base = settings.seed * 1000
    return Stream(
        initial=frame(settings.initial_rows, base, False),
        windows=[
            frame(settings.rows_per_window, base + 1 + i, i >= settings.onset)
            for i in range(settings.windows)
        ],
        onset=settings.onset,
    )


# The two clocks -------------------------------------------------------------------------------------------
@dataclass
class Clock:
    """Each replayed window's simulated ``[start, end)`` (one day) and the real one of its log rows."""

    real: dict[int, tuple[datetime, datetime]] = field(default_factory=dict)

    @staticmethod
    def simulated(window: int) -> tuple[datetime, datetime]:
        start = SIMULATED_START + timedelta(days=window)
        return start, start + timedelta(days=1)

    def record(self, window: int, start: datetime, end: datetime) -> None:
        self.real[window] = (start, end)

    def real_range(self, start: datetime, end: datetime) -> tuple[datetime, datetime] | None:
        """The real time range of the replayed windows that overlap the simulated ``[start, end)``."""
        inside = [
            i
            for i in sorted(self.real)
            if self.simulated(i)[1] > start and self.simulated(i)[0] < end  # overlaps
        ]
        if not inside:
            return None
        return self.real[inside[0]][0], self.real[inside[-1]][1]
