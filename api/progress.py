"""Progress of the long CLI operations: a bar in a terminal, log lines elsewhere, a summary.

Rotation, migration to PKCS#11, verification, export, the retention sweep and the bench
seeding report through `vault.progress.Progress`; this is the CLI's listener. In a terminal
it draws `rich`'s progress bar (rate and ETA); under cron or a pipe it writes one line every
`interval` seconds to stderr instead, so a log shows the job is alive. `summary()` is the
one JSON line `--json` prints at the end. Only counts and task names pass through here:
never an identifier, key or contact value.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress
from rich.text import Text

#: Exit status after Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED = 130


class _RateColumn(ProgressColumn):
    """Units per second (rich's own speed column formats bytes)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f}/s" if speed else "–/s")


class CliProgress:
    """A `vault.progress.Progress` for the terminal or the log; use it as a context manager."""

    def __init__(
        self,
        *,
        stream: TextIO | None = None,
        tty: bool | None = None,
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty() if tty is None else tty
        self._interval = interval
        self._clock = clock
        self._started = clock()
        self._task = ""
        self._total: int | None = None
        self._done = 0
        self._phase_done = 0
        self._phase_started = self._started
        self._next_log = self._started + interval
        self._bar: RichProgress | None = None
        self._bar_task: Any = None
        if self._tty:
            self._bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                _RateColumn(),
                TimeRemainingColumn(),
                console=Console(file=self._stream),
                transient=False,
            )

    def __enter__(self) -> CliProgress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()

    # -- vault.progress.Progress ---------------------------------------------------------
    def begin(self, task: str, total: int | None) -> None:
        self._task, self._total, self._phase_done = task, total, 0
        self._phase_started = self._clock()
        if self._bar is not None:
            self._bar_task = self._bar.add_task(task, total=total)

    def advance(self, done: int) -> None:
        self._done += done
        self._phase_done += done
        if self._bar is not None and self._bar_task is not None:
            self._bar.advance(self._bar_task, done)
            return
        now = self._clock()
        if now >= self._next_log:
            self._next_log = now + self._interval
            self._stream.write(self._line(now) + "\n")
            self._stream.flush()

    # -- reporting -----------------------------------------------------------------------
    def _line(self, now: float) -> str:
        seconds = max(now - self._phase_started, 1e-9)
        rate = self._phase_done / seconds
        of = f"/{self._total}" if self._total is not None else ""
        line = f"progress task={self._task} done={self._phase_done}{of} rate={rate:,.0f}/s"
        if self._total is not None and rate > 0:
            line += f" eta={max(self._total - self._phase_done, 0) / rate:,.0f}s"
        return line

    @property
    def done(self) -> int:
        return self._done

    def seconds(self) -> float:
        return self._clock() - self._started

    def summary(self, **extra: Any) -> dict[str, Any]:
        """The `--json` line: units done over every phase, seconds, rate, plus `extra`."""
        seconds = self.seconds()
        rate = self._done / seconds if seconds > 0 else 0.0
        return {"done": self._done, "seconds": round(seconds, 3), "rate": round(rate, 1), **extra}
