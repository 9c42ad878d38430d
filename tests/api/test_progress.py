"""The CLI's progress listener: log lines off a terminal, a rich bar on one, the summary."""

from __future__ import annotations

import io

from api.progress import CliProgress


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_off_a_terminal_it_logs_a_line_per_interval_with_rate_and_eta() -> None:
    """Without a terminal, one line per 5 s interval, naming task, count, rate and ETA."""
    out, clock = io.StringIO(), Ticks()
    with CliProgress(stream=out, tty=False, interval=5.0, clock=clock) as progress:
        progress.begin("re-wrap subjects", 1000)
        clock.now += 1
        progress.advance(100)  # inside the first interval: nothing written
        assert out.getvalue() == ""
        clock.now += 4
        progress.advance(150)
        clock.now += 1
        progress.advance(50)  # the next line is due 5 s after the last one
    lines = out.getvalue().splitlines()
    assert lines == ["progress task=re-wrap subjects done=250/1000 rate=50/s eta=15s"]


def test_on_a_terminal_it_draws_a_bar() -> None:
    """On a terminal the task's name and count go to rich's bar, not to log lines."""
    out = io.StringIO()
    with CliProgress(stream=out, tty=True) as progress:
        progress.begin("verify audit chain", 10)
        progress.advance(10)
    text = out.getvalue()
    assert "verify audit chain" in text and "10/10" in text
    assert "progress task=" not in text


def test_summary_counts_every_phase_and_adds_the_callers_fields() -> None:
    """The `--json` summary sums the units of all phases over the whole run's seconds."""
    clock = Ticks()
    progress = CliProgress(stream=io.StringIO(), tty=False, clock=clock)
    progress.begin("re-wrap subjects", 30)
    progress.advance(30)
    progress.begin("re-wrap retained", 10)
    progress.advance(10)
    clock.now += 2
    assert progress.summary(command="keys rotate") == {
        "done": 40,
        "seconds": 2.0,
        "rate": 20.0,
        "command": "keys rotate",
    }
