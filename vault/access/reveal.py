"""Reveal: open what the decisions need from each subject row, and check it.

The fields an allowed identifier reveals are decrypted; a row found by a blind index has
that identifier opened too (also when denied: which denial a row gives is about that row)
and its index re-derived and compared. A failed check turns the outcome into an
`integrity_error` denial; a keyring that cannot unwrap is `Unavailable`.

Key unwraps: with the local keyring an unwrap is an AES key unwrap in this process: 1.7 µs,
3.7 µs with the cipher built (`DekManager.dek` of an uncached key), against 42 µs for a hop
to a worker thread (`asyncio.to_thread`), measured on the 2-core development machine; so it
runs inline. A PKCS#11 token's unwrap is a call into the
token's module (an HSM round trip in production, milliseconds) that would hold the event
loop: those run in a worker thread, one hop per chunk for every key the chunk needs
(`DekManager.blocking`, `unwrap_many`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from vault.access.judge import Outcome
from vault.crypto import IntegrityCheckFailed, KeyringError
from vault.errors import Unavailable
from vault.subjects.decision import DenyReason
from vault.subjects.store import decrypt_fields

if TYPE_CHECKING:
    from vault.context import VaultContext

KEYRING_UNAVAILABLE = "keyring is unavailable; nothing was changed or revealed"
#: A wrapped key the worker thread could not unwrap: the row fails its integrity check.
_WONT_OPEN = object()


class Opener:
    """Opens a chunk's decided outcomes (`reveal`). `remember=False` (bulk) keeps newly
    unwrapped keys out of the DEK cache: a batch of 10,000 subjects would otherwise push
    out the keys single lookups reuse."""

    __slots__ = ("ctx", "kind", "remember")

    def __init__(self, ctx: VaultContext, kind: str, *, remember: bool) -> None:
        self.ctx, self.kind, self.remember = ctx, kind, remember

    def _needs(self, o: Outcome) -> bool:
        return o.row is not None and (o.allow is not None or self.kind != "subject_id")

    async def reveal(self, outcomes: list[Outcome], keys: Sequence[str | None]) -> list[Outcome]:
        """The outcomes with allowed fields decrypted and rows checked (same order)."""
        deks: dict[str, Any] = {}
        if self.ctx.deks.blocking:
            rows = {
                o.row["id"]: o.row
                for o in outcomes
                if self._needs(o) and o.row["wrapped_dek"] is not None
            }
            if rows:
                wanted = [(r["id"], r["kek_version"], r["wrapped_dek"]) for r in rows.values()]
                try:
                    got = await asyncio.to_thread(
                        self.ctx.deks.unwrap_many, wanted, remember=self.remember
                    )
                except KeyringError as exc:
                    raise Unavailable(KEYRING_UNAVAILABLE) from exc
                # A key that did not unwrap (None) fails its row's check below.
                deks = {
                    sid: _WONT_OPEN if dek is None else dek
                    for sid, dek in zip(rows, got, strict=True)
                }
        done: dict[str, Outcome] = {}
        out: list[Outcome] = []
        for o, key in zip(outcomes, keys, strict=True):
            if key is None or not self._needs(o):
                out.append(o)
                continue
            opened = done.get(key)
            if opened is None:
                opened = done[key] = self._open(o, key, deks.get(o.row["id"]))
            out.append(opened)
        return out

    def _open(self, o: Outcome, key: str, dek: Any) -> Outcome:
        allow = o.allow
        if dek is _WONT_OPEN:
            return Outcome(DenyReason.INTEGRITY_ERROR, o.row)
        try:
            data = decrypt_fields(
                self.ctx,
                o.row,
                allow.fields if allow is not None else (),
                cache_key=self.remember,
                found_by=None if self.kind == "subject_id" else (self.kind, key),
                dek=dek,
            )
        except IntegrityCheckFailed:
            return Outcome(DenyReason.INTEGRITY_ERROR, o.row)
        except KeyringError as exc:
            raise Unavailable(KEYRING_UNAVAILABLE) from exc
        if allow is None:
            return o
        return Outcome(None, o.row, allow, None, data)
