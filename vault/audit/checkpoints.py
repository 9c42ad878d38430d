"""Signed checkpoints of the audit chain: "the chain had `head` at `chain_pos` (event
`seq`) at `at`", signed with Ed25519 so an auditor holding only the public key can check
that the trail up to that point was not rewritten or truncated; their rows in the database
(the sealer writes them, `vault.audit.chain`) and their line in the checkpoint file
(`vault.audit.checkpoint_file`).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.audit.chain_links import _CANONICAL
from vault.clock import as_utc
from vault.crypto import Signer, VerifyKey
from vault.storage.audit_tables import audit_checkpoints

if TYPE_CHECKING:
    from vault.context import VaultContext


def _checkpoint_message(position: int, seq: int, head: str, at: datetime) -> bytes:
    stamp = as_utc(at).isoformat()
    return f"tresor-audit-checkpoint|v1|{position}|{seq}|{head}|{stamp}".encode()


def _signing_key(ctx: VaultContext) -> Signer:
    ensure = getattr(ctx.kek, "ensure_signing_key", None)
    raw = ensure() if ensure is not None else ctx.secrets.signing_key
    if raw is None:
        raise RuntimeError("no checkpoint signing key in the keyring")
    return Signer(raw)


def public_key_pem(ctx: VaultContext) -> str:
    """The checkpoint verification key, for auditors outside the vault."""
    return _signing_key(ctx).verify_key.pem()


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed statement "the chain had `head` at `chain_pos` (event `seq`) at `at`"."""

    chain_pos: int
    seq: int
    head: str
    at: datetime
    key_id: str
    signature: str

    def message(self) -> bytes:
        return _checkpoint_message(self.chain_pos, self.seq, self.head, self.at)

    def line(self) -> bytes:
        """One line of the checkpoint file: compact JSON, ids and digests only."""
        return (
            _CANONICAL.encode(
                {
                    "v": 1,
                    "chain_pos": self.chain_pos,
                    "seq": self.seq,
                    "head": self.head,
                    "at": as_utc(self.at).isoformat(),
                    "key_id": self.key_id,
                    "signature": self.signature,
                }
            )
            + b"\n"
        )

    @classmethod
    def parse(cls, line: bytes) -> Checkpoint:
        """A line of the checkpoint file; `ValueError` for anything else."""
        try:
            raw = msgspec.json.decode(line, type=_CheckpointLine)
            return cls(
                raw.chain_pos,
                raw.seq,
                raw.head,
                datetime.fromisoformat(raw.at),
                raw.key_id,
                raw.signature,
            )
        except (msgspec.DecodeError, ValueError) as exc:
            raise ValueError("not a checkpoint line") from exc

    def signed_by(self, public: VerifyKey) -> bool:
        return _signed(public, self.signature, self.message())


def _signed(public: VerifyKey, signature: str, message: bytes) -> bool:
    """Whether the base64 `signature` is `public`'s signature of `message`."""
    try:
        raw = base64.b64decode(signature, validate=True)
    except ValueError:
        return False
    return public.verify(raw, message)


class _CheckpointLine(msgspec.Struct, forbid_unknown_fields=True):
    v: int
    chain_pos: int
    seq: int
    head: str
    at: str
    key_id: str
    signature: str


async def _last_checkpoint(conn: AsyncConnection) -> Any:
    """(chain_pos, at, seq) of the newest checkpoint in the database, or None."""
    return (
        await conn.execute(
            select(audit_checkpoints.c.chain_pos, audit_checkpoints.c.at, audit_checkpoints.c.seq)
            .order_by(audit_checkpoints.c.chain_pos.desc())
            .limit(1)
        )
    ).first()


async def _sign_checkpoint(
    ctx: VaultContext, conn: AsyncConnection, position: int, seq: int, head: str, now: datetime
) -> Checkpoint:
    private = _signing_key(ctx)
    signature = private.sign(_checkpoint_message(position, seq, head, now))
    checkpoint = Checkpoint(
        position,
        seq,
        head,
        now,
        private.verify_key.key_id,
        base64.b64encode(signature).decode(),
    )
    await conn.execute(
        insert(audit_checkpoints).values(
            chain_pos=position,
            seq=seq,
            head=head,
            at=now,
            key_id=checkpoint.key_id,
            signature=checkpoint.signature,
        )
    )
    return checkpoint


async def newest_checkpoint(ctx: VaultContext) -> Checkpoint | None:
    """The newest signed checkpoint in the database, as it would stand in the file."""
    async with ctx.transaction() as conn:
        return await _newest_checkpoint(conn)


async def _newest_checkpoint(conn: AsyncConnection) -> Checkpoint | None:
    row = (
        await conn.execute(
            select(audit_checkpoints).order_by(audit_checkpoints.c.chain_pos.desc()).limit(1)
        )
    ).first()
    if row is None:
        return None
    return Checkpoint(row.chain_pos, row.seq, row.head, row.at, row.key_id, row.signature)
