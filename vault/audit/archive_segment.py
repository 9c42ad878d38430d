"""Checking and writing the events of one archived segment, page by page.

The archive re-derives every event's MAC from the one before while it writes the segment,
so a broken chain is never archived. This runs in a worker thread while the next page is
read (`vault.audit.archive._write_segment`), so it keeps its state in one object and
touches nothing shared but the gzip stream it is given.

The loop is the archive's CPU per event, on a machine that serves lookups beside it: the
time stamp is formatted once for the MAC and the line (`_canonical_values` leaves it in
place), the MAC uses the keyed state prepared once (`Mac.hexdigester`, as the verifier
does), and a page's lines reach gzip in one write.
"""

from __future__ import annotations

import gzip
from typing import Any

from vault.audit.archive_format import encoded_event
from vault.audit.chain_links import EVENT_COLUMNS, _canonical_values, chain_message
from vault.crypto import Mac, same_digest
from vault.errors import InvariantViolation

_N = len(EVENT_COLUMNS)


class ArchiveBroken(InvariantViolation):
    """The live chain does not verify where a segment was to be cut: nothing archived."""


class ChainWriter:
    """Checks a segment's events against their seals, in chain order, and writes their
    lines; carries the chain's state from one page to the next."""

    def __init__(self, key: Mac, previous: str, expected: int, last_seq: int) -> None:
        self.previous, self.expected, self.last_seq = previous, expected, last_seq
        self.digest = key.hexdigester()
        self.written = 0

    def write(self, rows: list[Any], out: gzip.GzipFile) -> None:
        digest, previous, expected, last_seq = (
            self.digest,
            self.previous,
            self.expected,
            self.last_seq,
        )
        lines = []
        for row in rows:
            values, position, stored = list(row[:_N]), row[_N], row[_N + 1]
            seq = values[0]
            if position != expected or seq <= last_seq:
                raise ArchiveBroken(f"event seq {seq} is out of chain order")
            # `values` keeps the formatted time stamp for the line below.
            mac = digest(chain_message(previous, position, _canonical_values(values)))
            if not same_digest(mac, stored):
                raise ArchiveBroken(f"event seq {seq} does not match its seal")
            lines.append(encoded_event(values, position, mac))
            previous, expected, last_seq = mac, expected + 1, seq
        if lines:
            lines.append(b"")
            out.write(b"\n".join(lines))
        self.previous, self.expected, self.last_seq = previous, expected, last_seq
        self.written += len(rows)
