"""Clocks a test moves by hand, for the fetch workers' ``WorkerLimit``."""

from __future__ import annotations

from audit_assets.worker_limit import WorkerLimit


class Clocks:
    """Wall time and the process's CPU time, as a ``WorkerLimit`` reads them."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    def spend(self, seconds: float, cores: float) -> None:
        self.wall += seconds
        self.cpu += seconds * cores

    def limit(self, most: int) -> WorkerLimit:
        return WorkerLimit(most, wall_clock=lambda: self.wall, cpu_clock=lambda: self.cpu)
