"""The SMS file outbox (development and tests): atomic JSON files, read back in order,
pruned by the vault's clock like the mail outbox."""

from __future__ import annotations

from datetime import timedelta

from vault.sms import FileSmsOutbox, TextMessage, read_outbox


async def test_messages_are_written_privately_and_read_back_in_order(tmp_path, clock):
    """Each message is one file only its owner can read; `read_outbox` returns them oldest
    first."""
    outbox = FileSmsOutbox(tmp_path / "sms", clock)
    await outbox.check()
    await outbox.send(TextMessage("+4930111", "eins"))
    clock.advance(timedelta(seconds=1))
    await outbox.send(TextMessage("+4930222", "zwei"))
    assert read_outbox(tmp_path / "sms") == [
        TextMessage("+4930111", "eins"),
        TextMessage("+4930222", "zwei"),
    ]
    files = list((tmp_path / "sms").iterdir())
    assert len(files) == 2 and all(f.stat().st_mode & 0o077 == 0 for f in files)


async def test_old_messages_are_pruned_by_the_clock(tmp_path, clock):
    """Messages older than the retention go, newer ones stay."""
    outbox = FileSmsOutbox(tmp_path / "sms", clock)
    await outbox.send(TextMessage("+4930111", "alt"))
    clock.advance(timedelta(hours=25))
    await outbox.send(TextMessage("+4930222", "neu"))
    assert await outbox.prune(timedelta(hours=24)) == 1
    assert read_outbox(tmp_path / "sms") == [TextMessage("+4930222", "neu")]
