"""The pause rules of adaptive pacing: none at the best speed or with nobody else at work,
in proportion when slower or while others work."""

from __future__ import annotations

import pytest

from vault.pacing import BUSY_MEMORY, MAX_PAUSE_FACTOR, BusyShare, Pacer


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
