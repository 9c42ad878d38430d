"""The pause rules of adaptive pacing: none at the best speed or with nobody else at work,
in proportion when slower or while others work."""

from __future__ import annotations

import pytest

from vault.pacing import (
    BUSY_COMMITS_PER_SECOND,
    BUSY_MEMORY,
    MAX_LOG_PAUSE,
    MAX_PAUSE_FACTOR,
    OWN_COMMITS_PER_BATCH,
    SHARED_BATCH,
    WINDOW_SECONDS,
    BusyShare,
    LogPacer,
    Pacer,
    ServerReading,
    log_budget,
)


def test_batches_at_the_best_speed_are_never_followed_by_a_pause() -> None:
    """An idle vault, whose batches take about the same time, runs without any pause."""
    pacer = Pacer()
    pauses = [pacer.pause_for(seconds, 1000) for seconds in (0.10, 0.11, 0.10, 0.12, 0.09)]
    assert pauses == [0.0] * 5
    assert pacer.paused == 0.0


def test_a_slowed_batch_is_followed_by_a_pause_in_proportion() -> None:
    """A batch twice as slow per row as the best pauses for its own time once more; three
    times as slow, twice its time."""
    pacer = Pacer()
    assert pacer.pause_for(0.1, 1000) == 0.0
    assert pacer.pause_for(0.2, 1000) == pytest.approx(0.2)
    assert pacer.pause_for(0.3, 1000) == pytest.approx(0.6)
    assert pacer.paused == pytest.approx(0.8)


def test_the_pause_is_capped_and_counted_per_row() -> None:
    """A batch ten times slower pauses at most `MAX_PAUSE_FACTOR` times its time, and a
    smaller last batch is judged per row, not by its total."""
    pacer = Pacer()
    assert pacer.pause_for(0.1, 1000) == 0.0
    assert pacer.pause_for(1.0, 1000) == pytest.approx(MAX_PAUSE_FACTOR * 1.0)
    assert pacer.pause_for(0.01, 100) == 0.0


def test_a_disabled_pacer_never_pauses() -> None:
    """`--no-pace`: slow batches run on at once."""
    pacer = Pacer(enabled=False)
    assert pacer.pause_for(0.1, 1000) == 0.0
    assert pacer.pause_for(1.0, 1000) == 0.0


def test_a_busy_share_pauses_only_while_others_work() -> None:
    """While other sessions work, a step of 0.1 s is followed by 0.2 s (a third of the time
    for the operation); with nobody else at work, or with `--no-pace`, by nothing."""
    share = BusyShare()
    assert share.pause_for(0.1, others_seen=False) == 0.0
    assert share.pause_for(0.1, others_seen=True) == pytest.approx(0.2)
    assert share.paused == pytest.approx(0.2)
    assert BusyShare(share=0.5).pause_for(0.1, others_seen=True) == pytest.approx(0.1)
    assert BusyShare(enabled=False).pause_for(0.1, others_seen=True) == 0.0


def test_a_busy_share_remembers_others_for_a_few_steps() -> None:
    """One look that saw nobody does not end the pauses: only `BUSY_MEMORY` looks in a row
    without other sessions at work do."""
    share = BusyShare()
    assert share.pause_for(0.1, others_seen=True) > 0
    pauses = [share.pause_for(0.1, others_seen=False) for _ in range(BUSY_MEMORY)]
    assert all(p > 0 for p in pauses[:-1]) and pauses[-1] == 0.0


MB = 1024 * 1024


def _run(pacer: LogPacer, seconds: float, wal: int, commits: int, batches: int) -> list[float]:
    """Feed `batches` readings `seconds` apart, each `wal` bytes and `commits` commits
    (all of the server's) after the last; the pauses the pacer asked for."""
    last = pacer.readings[-1][0]
    pauses = []
    for k in range(1, batches + 1):
        reading = ServerReading(
            last.seconds + k * seconds, last.wal_bytes + k * wal, last.commits + k * commits
        )
        pauses.append(pacer.pause_after(reading))
    return pauses


def test_the_log_budget_is_the_rate_that_never_requests_a_checkpoint() -> None:
    """1 GB of `max_wal_size`, completion target 0.9, a 5-minute timeout: 1.8 MB/s."""
    assert log_budget(1024 * MB, 300, 0.9) == pytest.approx(1024 * MB / 1.9 / 300)


def test_an_idle_vault_gets_full_batches_without_pauses_after_one_window() -> None:
    """Only the ranges' own commits: after the first window the batches are full size and
    no batch pauses after it, however much log they write."""
    pacer = LogPacer(budget=1 * MB, ranges=2)
    pacer.start(ServerReading(0.0, 0, 0))
    assert pacer.batch(5000) == SHARED_BATCH
    _run(pacer, 0.1, 100_000, 2 * OWN_COMMITS_PER_BATCH, int(WINDOW_SECONDS / 0.1) + 1)
    assert pacer.batch(5000) == 5000
    assert _run(pacer, 0.1, 30 * MB, 2 * OWN_COMMITS_PER_BATCH, 50) == [0.0] * 50
    assert pacer.batch(5000) == 5000


def test_while_others_commit_the_log_rate_is_brought_down_to_the_budget() -> None:
    """Lookups committing: small batches, each followed by the pause that makes its
    interval's log (3 MB in 0.5 s) come out at the budget of 2 MB/s: 1 s more."""
    pacer = LogPacer(budget=2 * MB)
    pacer.start(ServerReading(0.0, 0, 0))
    commits = int(BUSY_COMMITS_PER_SECOND * 2)
    pauses = _run(pacer, 0.5, 3 * MB, commits, 10)
    assert pauses == pytest.approx([1.0] * 10)
    assert pacer.batch(5000) == SHARED_BATCH
    assert pacer.paused == pytest.approx(10.0)


def test_a_rotation_started_under_lookups_is_paced_from_its_first_batch() -> None:
    """Before a whole window was seen the vault counts as busy: the first batches are
    small and paced, so no full batch's log lands on lookups already running."""
    pacer = LogPacer(budget=1 * MB)
    pacer.start(ServerReading(0.0, 0, 0))
    assert pacer.batch(5000) == SHARED_BATCH
    assert _run(pacer, 0.25, MB // 2, 0, 1) == pytest.approx([0.25])


def test_the_pause_is_capped_when_the_lookups_alone_exceed_the_budget() -> None:
    """Log far over budget (the lookups' own, say) pauses at most `MAX_LOG_PAUSE`: the
    rotation still moves."""
    pacer = LogPacer(budget=1 * MB)
    pacer.start(ServerReading(0.0, 0, 0))
    assert _run(pacer, 1.0, 100 * MB, 1000, 5) == [MAX_LOG_PAUSE] * 5


def test_lookups_that_stop_give_the_rotation_its_full_speed_back() -> None:
    """Busy, then a window with only the rotation's own commits: full batches again."""
    pacer = LogPacer(budget=1 * MB)
    pacer.start(ServerReading(0.0, 0, 0))
    _run(pacer, 0.5, 10_000, 500, 6)
    assert pacer.batch(5000) == SHARED_BATCH
    _run(pacer, 0.5, 10_000, OWN_COMMITS_PER_BATCH, int(WINDOW_SECONDS / 0.5) + 2)
    assert pacer.batch(5000) == 5000
