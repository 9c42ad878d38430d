"""`tresor serve` and `tresor jobs`: uvicorn with its workers, and the periodic jobs inline or
in one low-priority process beside them, ended cleanly on SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from api.cli_support import UsageError
from vault.catalogue.loader import load_policies
from vault.context import open_kek_provider
from vault.setting_values import listening_url
from vault.settings import Settings

#: Set for the worker processes, which read it as `Settings.inline_jobs`: whether each
#: worker runs the periodic jobs.
INLINE_JOBS_ENV = "TRESOR_INLINE_JOBS"


def load_policies_of(settings: Settings) -> None:
    """Purpose catalogue, contact-pressure rules, touchpoints: raises `PolicyError`."""
    load_policies(settings.policies_dir)


def describe_db(settings: Settings) -> str:
    if settings.is_sqlite:
        return str(settings.sqlite_path)
    from sqlalchemy.engine import make_url

    return make_url(settings.effective_database_url).render_as_string(hide_password=True)


def ensure_port_free(host: str, port: int) -> None:
    """Bind the address once, as uvicorn will (SO_REUSEADDR), and let go: a busy port is a
    usage error before anything starts, not a failure after the jobs already ran."""
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc} (another server running? "
            "choose --port or TRESOR_PORT)"
        ) from None


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    host = args.host or settings.host
    port = args.port or settings.port
    ensure_port_free(host, port)  # first: nothing may be migrated, swept or announced
    tls = tls_options(args)  # before anything else: a TLS mistake must not serve plain HTTP
    load_policies_of(settings)
    kek = open_kek_provider(settings)  # fail before serving: keyring file, token, PIN
    getattr(kek, "close", lambda: None)()
    # Where the periodic jobs (sealer, retention) run: see api/jobs_process.py. SQLite keeps
    # them inline: one process holding its single write lock is what the embedded default
    # does best, and a second writer process would only queue behind it.
    jobs = args.jobs or ("inline" if settings.is_sqlite else "process")
    scheme = "https" if tls else "http"
    if not settings.public_url_set:
        # Mail links point where this server listens; the worker and jobs processes read
        # the environment, so it carries the address to them.
        settings = dataclasses.replace(settings, public_url=listening_url(scheme, host, port))
        os.environ["TRESOR_PUBLIC_URL"] = settings.public_url
    print(
        f"Tresor serving on {scheme}://{host}:{port}/  "
        f"(API docs: {scheme}://{host}:{port}/schema/swagger)"
    )
    print(f"database: {describe_db(settings)}; outbox: {settings.outbox_dir}", flush=True)
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": "warning",
        "access_log": False,
        "proxy_headers": False,
        **tls,
    }
    metrics_dir = settings.metrics_multiproc_dir
    if args.workers > 1 or jobs == "process":
        # Several processes: metrics are aggregated across them through prometheus-client's
        # multiprocess directory, which must be set before prometheus-client is imported.
        metrics_dir = settings.data_dir / "metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True, mode=0o700)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        # This process serves /metrics too (with one worker): it aggregates the same way.
        settings = dataclasses.replace(settings, metrics_multiproc_dir=metrics_dir)
    os.environ[INLINE_JOBS_ENV] = "1" if jobs == "inline" else "0"
    from api.app import create_app

    helper = _JobsProcess(metrics_dir) if jobs == "process" else None
    stopped_by: list[int] = []
    try:
        with _signals_end_serving(stopped_by):
            if args.workers > 1:
                # Worker processes import the app by name (api/asgi.py) and read the same
                # environment, INLINE_JOBS_ENV included.
                print(f"workers: {args.workers}", flush=True)
                uvicorn.run("api.asgi:app", workers=args.workers, **options)
            else:
                uvicorn.run(
                    create_app(settings, background_jobs=jobs == "inline", long_running=True),
                    **options,
                )
    finally:
        if helper is not None:
            helper.stop()
    for sig in stopped_by:
        # End the way uvicorn would have: killed by the signal that stopped the server.
        signal.signal(sig, signal.SIG_DFL)
        signal.raise_signal(sig)
    return 0


class TlsOptionsError(ValueError):
    """`--tls-key` or `--client-ca` without `--tls-cert`, or a file that is not there."""


def tls_options(args: argparse.Namespace) -> dict[str, Any]:
    """uvicorn's TLS settings from `--tls-cert`, `--tls-key` and `--client-ca`: TLS with the
    certificate and key; with a client CA, client certificates are asked for (optional, so
    key-holding systems and browsers still connect), verified against it, and a verified
    one's subject can name an API client (`api.client_certs`)."""
    cert = getattr(args, "tls_cert", None)
    key = getattr(args, "tls_key", None)
    ca = getattr(args, "client_ca", None)
    if not cert:
        if key or ca:
            raise TlsOptionsError("--tls-key and --client-ca need --tls-cert")
        return {}
    for path in (cert, key, ca):
        if path and not os.path.isfile(path):
            raise TlsOptionsError(f"no such file: {path}")
    options: dict[str, Any] = {"ssl_certfile": cert, "ssl_keyfile": key or None}
    if ca:
        import ssl

        from api.client_certs import TlsHttpProtocol

        options |= {
            "ssl_ca_certs": ca,
            "ssl_cert_reqs": ssl.CERT_OPTIONAL,
            "http": TlsHttpProtocol,
        }
    return options


class _StopServing(BaseException):
    def __init__(self, sig: int) -> None:
        self.sig = sig


@contextlib.contextmanager
def _signals_end_serving(stopped_by: list[int]) -> Iterator[None]:
    """After a graceful shutdown uvicorn re-raises the signal that caused it, which would
    end this process before it stopped its jobs process. Handlers installed here turn that
    re-raise into an exception, so the caller cleans up and then re-raises it itself."""

    def handler(sig: int, _frame: Any) -> None:
        raise _StopServing(sig)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    except _StopServing as stop:
        stopped_by.append(stop.sig)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class _JobsProcess:
    """The `tresor jobs` child of `serve`, started again (after a second) if it ever ends
    while the server runs, so a node never silently stops sealing."""

    def __init__(self, metrics_dir: Path | None) -> None:
        import threading

        self._metrics_dir = metrics_dir
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # a restart and `stop` never interleave
        self.proc = self._start()
        self._watch = threading.Thread(target=self._supervise, name="tresor-jobs", daemon=True)
        self._watch.start()

    def _start(self) -> Any:
        import subprocess

        proc = subprocess.Popen(  # noqa: S603 - fixed argv (this interpreter, our module), no shell
            [sys.executable, "-m", "api.cli", "jobs", "--parent-pid", str(os.getpid())]
        )
        print(f"jobs: sealer and retention in process {proc.pid}", flush=True)
        return proc

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            code = self.proc.wait()
            if self._stopping.wait(1.0):
                return
            with self._lock:
                if self._stopping.is_set():
                    return
                print(
                    f"jobs: process {self.proc.pid} ended ({code}); starting it again", flush=True
                )
                _forget_metrics_of(self.proc.pid, self._metrics_dir)
                self.proc = self._start()

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (the jobs process seals what is pending, then exits), SIGKILL after
        `timeout`."""
        import subprocess

        with self._lock:
            self._stopping.set()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _forget_metrics_of(pid: int, metrics_dir: Path | None) -> None:
    """A dead process's live gauges must not count any more (prometheus multiprocess)."""
    if metrics_dir is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def cmd_jobs(settings: Settings, args: argparse.Namespace) -> int:
    from api import event_loop
    from api.jobs_process import NICENESS, run_jobs
    from api.logging import configure_logging

    configure_logging(settings.log_level)
    os.nice(NICENESS)
    load_policies_of(settings)
    event_loop.run(run_jobs(settings, parent_pid=args.parent_pid))
    return 0
