"""Adaptive pacing: a big operation gives way to the hot path by itself.

In the lowest layer so every area's long operation can use it (the key rotation in
`admin`, the audit archive in `audit`).

A batch of a rotation costs about the same work every time. When it suddenly takes longer
than the fastest batch seen, something else wants the same cores or disk, on a shared
machine most likely the lookups; so the operation pauses after such a batch, in proportion
to how much slower it was. On an idle vault batches run at their best time and there is no
pause at all, so full speed is kept; under lookups the operation settles at the share the
lookups leave it. The measure is the operation's own batch latency, so it needs no access
to the server's statistics and works the same for every backend.

Pure arithmetic on the times the caller measured; the caller sleeps (`pause_for`), so the
rule is tested without a clock.
"""

from __future__ import annotations

from dataclasses import dataclass

#: A batch up to this much slower per row than the best one is noise, not contention.
TOLERANCE = 1.25
#: The longest pause, as a multiple of the batch's own time: the operation never stops.
MAX_PAUSE_FACTOR = 2.0


@dataclass(slots=True)
class Pacer:
    """The pause after each batch, from the batch's seconds per row against the best.

    The best never drifts up: under lookups that last the whole operation, a best that
    crept towards the slow batches would stop the pauses exactly when they are needed.
    The cost of a best that was a lucky outlier is bounded: at most `MAX_PAUSE_FACTOR`
    times the operation's own time, and `paused` is reported."""

    enabled: bool = True
    best: float | None = None
    paused: float = 0.0

    def pause_for(self, seconds: float, rows: int) -> float:
        """Seconds to wait after a batch of `rows` rows that took `seconds`: 0 while the
        batch is about as fast as the best one seen, else its time scaled by how much
        slower it was (at most `MAX_PAUSE_FACTOR` times its time)."""
        if rows <= 0 or seconds <= 0:
            return 0.0
        per_row = seconds / rows
        if self.best is None or per_row < self.best:
            self.best = per_row
            return 0.0
        slowdown = per_row / self.best
        if not self.enabled or slowdown <= TOLERANCE:
            return 0.0
        pause = seconds * min(slowdown - 1.0, MAX_PAUSE_FACTOR)
        self.paused += pause
        return pause
