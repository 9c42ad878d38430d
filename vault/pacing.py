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

from dataclasses import dataclass, field

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


# The server's side. At 1 M subjects a rotation's batches are not slowed by the lookups:
# the lookups are slowed by the rotation's write-ahead log (4-8 KB and about one full-page
# image per key: their audit events commit behind it, and the log forces a checkpoint every
# few seconds). Lookups that run from the first batch slow every batch alike, so the rule
# above never fires. So, while other transactions commit in the database, a range also
# keeps the server's whole log rate within a budget the server's own settings give: the
# rate at which the log never reaches the size that requests a checkpoint before
# `checkpoint_timeout` (PostgreSQL requests one at `max_wal_size / (1 + completion
# target)`). With nothing else committing it runs at full speed.

#: How far back the commits of others are counted: PostgreSQL publishes a busy backend's
#: counts at most once a second, so a shorter window would see lookups come and go.
WINDOW_SECONDS = 2.0
#: Transactions a second by others (the rotation's own subtracted) that count as a vault
#: serving requests, not as the odd background job.
BUSY_COMMITS_PER_SECOND = 20.0
#: Transactions one range commits per batch (its write; its read is rolled back, or with
#: the driver's autocommit counted here as well: the higher count, so an idle vault is
#: never taken for a busy one).
OWN_COMMITS_PER_BATCH = 2
#: The longest pause after one batch: a rotation under a log already over budget from the
#: lookups alone still moves.
MAX_LOG_PAUSE = 2.0
#: The batch while others commit (and until a window without them was seen): keys in key
#: order, heap pages per window in page order (at most as many keys per transaction). A
#: full batch of 5,000 writes up to 20-40 MB of log at once, which every lookup's commit
#: waits behind; a small one spreads the same log over the budget's pauses.
SHARED_BATCH = 200


def log_budget(max_wal_bytes: float, checkpoint_timeout: float, completion_target: float) -> float:
    """Bytes of log a second the server can write without a requested checkpoint."""
    return max_wal_bytes / (1.0 + completion_target) / checkpoint_timeout


@dataclass(frozen=True, slots=True)
class ServerReading:
    """What the server said after a batch: its log insert position and the transactions
    committed in the database so far (`pg_current_wal_insert_lsn`, `pg_stat_database`),
    at `seconds` on the caller's monotonic clock."""

    seconds: float
    wal_bytes: int
    commits: int


@dataclass(slots=True)
class LogPacer:
    """The pause after each batch of one range, and the size of its next batch, from the
    server's readings after each batch (one range of `ranges` running at once).

    Busy means others committed at least `BUSY_COMMITS_PER_SECOND` over the last
    `WINDOW_SECONDS` (the ranges' own commits subtracted). While busy, the pause brings
    the server's log rate since the previous reading (this range's batch and pause, the
    other ranges' and the lookups' log alike) down to `budget`; each range sees the whole
    server's log, so together they keep to it. A range starts small and takes full batches
    only once a whole window was seen without others: a rotation started under lookups
    never writes a full batch's log at once."""

    budget: float
    ranges: int = 1
    readings: list[tuple[ServerReading, int]] = field(default_factory=list)
    batches: int = 0
    busy: bool = True
    paused: float = 0.0
    #: The caller's latest reading, kept here between its batch and its pause.
    last: ServerReading | None = None

    def batch(self, full: int) -> int:
        """Keys in the next batch: `full` on a vault seen idle, else `SHARED_BATCH`."""
        return min(full, SHARED_BATCH) if self.busy else full

    def start(self, reading: ServerReading) -> None:
        """The reading before the first batch (its log is then paced like the others')."""
        self.readings = [(reading, self.batches)]

    def pause_after(self, reading: ServerReading) -> float:
        """Seconds to wait after the batch that ended with `reading`."""
        self.batches += 1
        previous = self.readings[-1][0] if self.readings else None
        self.readings.append((reading, self.batches))
        while len(self.readings) > 2 and (
            reading.seconds - self.readings[1][0].seconds >= WINDOW_SECONDS
        ):
            del self.readings[0]
        first, first_batches = self.readings[0]
        span = reading.seconds - first.seconds
        if span >= WINDOW_SECONDS:  # else too soon to tell: `busy` stays as it was
            own = (self.batches - first_batches) * OWN_COMMITS_PER_BATCH * self.ranges
            others = reading.commits - first.commits - own
            self.busy = others / span >= BUSY_COMMITS_PER_SECOND
        if not self.busy or previous is None:
            return 0.0
        elapsed = reading.seconds - previous.seconds
        wanted = (reading.wal_bytes - previous.wal_bytes) / self.budget - elapsed
        pause = min(max(wanted, 0.0), MAX_LOG_PAUSE)
        self.paused += pause
        return pause
