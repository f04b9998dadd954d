"""Talk detection for many legs at once: energy with hysteresis, attack and hang time."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class TalkSettings:
    """Talking starts after ``attack_frames`` above ``start_dbfs`` and stops after
    ``hang_frames`` below ``stop_dbfs`` (20 ms frames)."""

    start_dbfs: float = -40.0
    stop_dbfs: float = -50.0
    attack_frames: int = 2
    hang_frames: int = 20

    def __post_init__(self) -> None:
        if self.stop_dbfs > self.start_dbfs:
            raise ValueError("stop_dbfs must not exceed start_dbfs (hysteresis)")
        if self.attack_frames < 1 or self.hang_frames < 1:
            raise ValueError("attack_frames and hang_frames must be at least 1")


class TalkColumns:
    """Detector state for ``n`` legs as arrays; rows line up with the mixer's leg rows."""

    def __init__(self, n: int) -> None:
        self.talking = np.zeros(n, dtype=bool)
        self.above = np.zeros(n, dtype=np.int32)
        self.hang = np.zeros(n, dtype=np.int32)

    def row(self, i: int) -> tuple[bool, int, int]:
        return bool(self.talking[i]), int(self.above[i]), int(self.hang[i])

    def set_row(self, i: int, value: tuple[bool, int, int]) -> None:
        self.talking[i], self.above[i], self.hang[i] = value

    def update(
        self, settings: TalkSettings, levels: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
        """Advance one frame; returns the rows that started and the rows that stopped talking."""
        loud = levels > settings.start_dbfs
        self.above = np.where(loud, self.above + 1, 0)
        started = ~self.talking & (self.above >= settings.attack_frames)
        voiced = levels > settings.stop_dbfs
        self.hang = np.where(voiced | started, settings.hang_frames, self.hang - 1)
        stopped = self.talking & (self.hang <= 0)
        self.talking = (self.talking | started) & ~stopped
        return np.flatnonzero(started), np.flatnonzero(stopped)
