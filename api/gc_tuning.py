"""Fewer, cheaper garbage collections in Tresor's long-running processes (`tresor serve` and
the `tresor jobs` process that delivers recipient notices and mail on PostgreSQL).

Everything built at start (the app, catalogues, compiled statements, transports) lives for the
whole process: `gc.freeze()` moves it out of the collector's reach. A request, or a batch of
notices, allocates thousands of short-lived objects; with CPython's default young-generation
threshold (700) that meant a collection every few requests, and full collections that showed
up in the lookup benchmark's tail latency and took about a tenth of the notice sender's CPU.
The raised thresholds trade some memory for that (docs/performance.md).
"""

from __future__ import annotations

import gc


def tune_gc_for_long_running() -> None:
    """Freeze what start-up built and raise the collection thresholds; call once, after
    start-up, in a process that serves or runs jobs until it is stopped."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
