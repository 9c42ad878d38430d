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


#: While other sessions work, a paced background read takes at most this share of the time.
BUSY_SHARE = 1 / 3
#: Steps after the last one that saw other sessions at work that still count as busy: one
#: look is an instant, and lookups spend most of their time outside the database, so a
#: busy vault shows no active session at a fair share of instants.
BUSY_MEMORY = 4


@dataclass(slots=True)
class BusyShare:
    """The pause after a step of a long read (the audit archive) while other sessions are at
    work on the same database: the step's own time x (1 / share - 1), none when nobody else
    was seen at work in the last `BUSY_MEMORY` steps.

    `Pacer`'s signal, a batch slower than the best one, stays silent when the lookups run
    from the operation's first step (every step is slowed alike), and a read barely slows
    anyway: it is the lookups that wait, for the CPU the operation's database backend takes
    at the same priority as theirs. So the signal here is the other sessions themselves
    (sampled by the caller, `vault.storage.dialect.other_sessions_working`), and on an idle
    vault the read keeps full speed."""

    enabled: bool = True
    share: float = BUSY_SHARE
    paused: float = 0.0
    #: Steps since other sessions were last seen at work (`BUSY_MEMORY` or more: idle).
    quiet_steps: int = BUSY_MEMORY

    def pause_for(self, seconds: float, others_seen: bool) -> float:
        """Seconds to wait after a step that took `seconds`, with other sessions seen at
        work during it or not."""
        self.quiet_steps = 0 if others_seen else self.quiet_steps + 1
        if not self.enabled or self.quiet_steps >= BUSY_MEMORY or seconds <= 0:
            return 0.0
        pause = seconds * (1.0 / self.share - 1.0)
        self.paused += pause
        return pause
