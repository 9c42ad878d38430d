"""Settings read from the environment in one place, including what `tresor serve` hands
its worker processes."""

from __future__ import annotations

from pathlib import Path

from vault.settings import Settings


def test_the_process_settings_serve_passes_to_its_workers_are_read_here():
    """TRESOR_INLINE_JOBS ("1" by default) and PROMETHEUS_MULTIPROC_DIR (unset: none) come
    from the environment through `Settings.from_env` like every other setting."""
    unset = Settings.from_env({})
    assert unset.inline_jobs is True and unset.metrics_multiproc_dir is None
    workers = Settings.from_env(
        {"TRESOR_INLINE_JOBS": "0", "PROMETHEUS_MULTIPROC_DIR": "/run/tresor/metrics"}
    )
    assert workers.inline_jobs is False
    assert workers.metrics_multiproc_dir == Path("/run/tresor/metrics")
    assert Settings.from_env({"TRESOR_INLINE_JOBS": "1"}).inline_jobs is True
