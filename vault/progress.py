"""How a long domain operation tells its caller how far it is, without knowing who listens.

Key rotation, audit verification, export and the retention sweep touch every row; the CLI
shows a bar (or log lines) for them. The domain must not import the CLI or a terminal
library, so it reports through this protocol and the caller decides what to show.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def begin(self, task: str, total: int | None) -> None:
        """A (new) phase starts; `total` is how many units it has, None if unknown."""
        ...

    def advance(self, done: int) -> None:
        """`done` more units of the current phase are finished (committed, verified)."""
        ...


class NoProgress:
    """The default listener: nobody watches."""

    def begin(self, task: str, total: int | None) -> None:
        return None

    def advance(self, done: int) -> None:
        return None


NO_PROGRESS: Progress = NoProgress()
