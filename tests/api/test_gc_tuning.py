"""The garbage-collection tuning of long-running processes is a setting of the whole
process: only `tresor serve` (and the ASGI entry point) asks for it, never an app that
another program builds."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from api.app import create_app
from vault.context import VaultContext
from vault.settings import Settings


@pytest.fixture
def gc_state() -> Iterator[tuple[int, int, int]]:
    """The thresholds before the test; restored (and the frozen objects thawed) after it."""
    before = gc.get_threshold()
    yield before
    gc.unfreeze()
    gc.set_threshold(*before)


async def _start_and_stop(app: object) -> None:
    for hook in app.on_startup:  # type: ignore[attr-defined]
        await hook(app)
    for hook in app.on_shutdown:  # type: ignore[attr-defined]
        await hook(app)


async def test_an_app_built_by_another_program_leaves_gc_alone(
    vault: VaultContext, settings: Settings, gc_state: tuple[int, int, int]
) -> None:
    """Starting an app that opens its own vault, without `long_running`, keeps the
    process's collection thresholds and freezes nothing (a test run's leaks must still be
    collected where they happen)."""
    frozen = gc.get_freeze_count()
    await _start_and_stop(create_app(settings, configure_logs=False))
    assert gc.get_threshold() == gc_state
    assert gc.get_freeze_count() == frozen


async def test_serving_tunes_gc_after_start(
    vault: VaultContext, gc_state: tuple[int, int, int]
) -> None:
    """`long_running=True` (what `tresor serve` passes) raises the young-generation
    threshold after start-up."""
    await _start_and_stop(create_app(vault=vault, configure_logs=False, long_running=True))
    assert gc.get_threshold()[0] > gc_state[0]
