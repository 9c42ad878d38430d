"""Fault injection: a TCP proxy in front of PostgreSQL that a test can cut and restore, a
tiny SMTP server that a test can stop and start, and an audit trail that refuses writes.

Cutting closes every open connection and refuses new ones, as a crashed or unreachable
database would; restoring lets connections through again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from tests.support.privacy import execute_ddl, is_sqlite

SQLITE_ON = (
    "CREATE TRIGGER audit_fail BEFORE INSERT ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'audit down'); END;"
)
SQLITE_OFF = ("DROP TRIGGER IF EXISTS audit_fail",)
PG_ON = (
    "CREATE OR REPLACE FUNCTION tresor_test_audit_fail() RETURNS trigger AS $$ "
    "BEGIN RAISE EXCEPTION 'audit down'; END; $$ LANGUAGE plpgsql",
    "CREATE TRIGGER audit_fail BEFORE INSERT ON audit_events "
    "FOR EACH ROW EXECUTE FUNCTION tresor_test_audit_fail()",
)
PG_OFF = (
    "DROP TRIGGER IF EXISTS audit_fail ON audit_events",
    "DROP FUNCTION IF EXISTS tresor_test_audit_fail()",
)


@asynccontextmanager
async def audit_down(vault) -> AsyncIterator[None]:
    """Every INSERT into audit_events fails while inside the block (a database trigger)."""
    sqlite = is_sqlite(vault)
    await execute_ddl(vault, *((SQLITE_ON,) if sqlite else PG_ON))
    try:
        yield
    finally:
        # Always removed: the PostgreSQL database is shared by the whole session.
        await execute_ddl(vault, *(SQLITE_OFF if sqlite else PG_OFF))


class CuttableProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self.cut_off = False

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut_off:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._links |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self._links -= {writer, up_writer}

    def cut(self) -> None:
        self.cut_off = True
        for w in list(self._links):
            w.close()
        self._links.clear()

    def restore(self) -> None:
        self.cut_off = False

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class TinySmtp:
    """A minimal SMTP server on a fixed local port that a test can stop and start again.

    It speaks just enough SMTP for `smtplib` (EHLO/HELO, MAIL, RCPT, DATA, NOOP, RSET,
    QUIT, no STARTTLS, no AUTH) and keeps every message it accepted in `messages`. Stopped,
    the port refuses connections, as a mail server that is down would.
    """

    def __init__(self, port: int = 0) -> None:
        import threading

        self.port = port
        self.messages: list[bytes] = []
        self._lock = threading.Lock()
        self._server: Any = None
        self._thread: Any = None

    def start(self) -> None:
        import socketserver
        import threading

        owner = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str) -> None:
                self.wfile.write(line.encode() + b"\r\n")
                self.wfile.flush()

            def handle(self) -> None:
                self.reply("220 tiny-smtp ready")
                while line := self.rfile.readline():
                    verb = line.decode("latin-1").strip().split(" ", 1)[0].upper()
                    if verb == "EHLO":
                        self.wfile.write(b"250-tiny-smtp\r\n250 8BITMIME\r\n")
                        self.wfile.flush()
                    elif verb in ("HELO", "MAIL", "RCPT", "NOOP", "RSET"):
                        self.reply("250 OK")
                    elif verb == "DATA":
                        self.reply("354 end with <CRLF>.<CRLF>")
                        body = bytearray()
                        while (chunk := self.rfile.readline()) not in (b".\r\n", b".\n", b""):
                            body += chunk[1:] if chunk.startswith(b"..") else chunk
                        with owner._lock:
                            owner.messages.append(bytes(body))
                        self.reply("250 queued")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("502 not implemented")

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self._server = Server(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None

    def received(self) -> list[bytes]:
        with self._lock:
            return list(self.messages)
