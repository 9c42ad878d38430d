"""The pause rule of adaptive pacing: none at the best speed, in proportion when slower."""

from __future__ import annotations

import pytest

from vault.pacing import MAX_PAUSE_FACTOR, Pacer


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
