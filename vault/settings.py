"""All configuration, read from the environment in exactly one place.

Each field documents its variable; everything else in Tresor receives a `Settings` value
instead of looking at `os.environ` itself, so tests can build one explicitly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from vault.bundled import default_policies_dir
from vault.env_reader import EnvReader
from vault.setting_values import (
    default_smtp_tls,
    limits_store_url,
    listening_url,
    minutes_list,
    openid_scopes,
    parse_networks,
    sqlite_sync_level,
)

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class SettingsError(ValueError):
    """Every bad variable of one environment at once: fixing them one start at a time is
    what an operator would otherwise do. The message names each variable and the rule it
    breaks, never the value (a mistyped value may be a secret)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid settings: " + "; ".join(problems))


@dataclass(frozen=True, slots=True)
class Settings:
    #: TRESOR_DATA_DIR: SQLite file, keyring file and mail outbox live here.
    data_dir: Path = Path("./tresor-data")
    #: TRESOR_DATABASE_URL: SQLAlchemy async URL; empty means SQLite in the data dir.
    database_url: str = ""
    #: TRESOR_POLICIES: directory holding purposes.toml, contact-pressure.toml and
    #: touchpoints.toml; unset, `./policies` if there is one, else the shipped defaults.
    policies_dir: Path = field(default_factory=default_policies_dir)
    #: TRESOR_SMTP_URL: smtp://user:pass@host:port for real mail; empty writes .eml files
    #: into the outbox directory of the data dir.
    smtp_url: str = ""
    #: TRESOR_SMTP_TLS: `starttls` (required: a server that does not offer it gets no
    #: mail), `tls` (TLS from the first byte, port 465) or `none`. Unset: `tls` for an
    #: smtps:// URL, `none` for a server on loopback, else `starttls`.
    smtp_tls: str = "none"
    #: TRESOR_MAIL_FROM: sender address of mails the vault sends (double opt-in).
    mail_from: str = "tresor@localhost"
    #: TRESOR_OUTBOX_HOURS: how long the file outbox (development only, without SMTP)
    #: keeps a mail before the retention sweep deletes it: mails hold addresses, codes
    #: and confirmation links. 0 keeps them until deleted by hand.
    outbox_hours: float = 24.0
    #: TRESOR_PUBLIC_URL: base URL customers reach the vault under (links in mails);
    #: unset, the address `tresor serve` listens on (`listening_url`).
    public_url: str = "http://127.0.0.1:8000"
    #: Whether TRESOR_PUBLIC_URL was set; if not, `serve` makes `public_url` follow
    #: `--host`, `--port` and TLS.
    public_url_set: bool = False
    #: TRESOR_HOST / TRESOR_PORT: where `tresor serve` listens.
    host: str = "127.0.0.1"
    port: int = 8000
    #: TRESOR_DOI_HOURS: how long a double opt-in confirmation link stays valid.
    double_opt_in_hours: int = 72
    #: TRESOR_DEK_CACHE: how many unwrapped subject keys the bounded cache may hold.
    dek_cache_size: int = 10_000
    #: TRESOR_CLIENT_CACHE_SECONDS: how long a verified API key is trusted before the
    #: client row is read again (bounds how late a revocation takes effect).
    client_cache_seconds: float = 2.0
    #: TRESOR_SEAL_INTERVAL: seconds between audit sealer runs in `serve` (bounds how long
    #: an event stays unsealed under normal load).
    seal_interval: float = 0.2
    #: TRESOR_AUDIT_CHECKPOINT_SECONDS: longest time between signed checkpoints of the audit
    #: chain while events are being sealed; bounds how many of the newest events could be
    #: deleted with their seals unnoticed by `tresor audit verify`.
    checkpoint_seconds: float = 10.0
    #: TRESOR_AUDIT_CHECKPOINT_FILE: the append-only file outside the database that receives
    #: every signed checkpoint (mode 0600); empty means `audit-checkpoints.jsonl` in the
    #: data dir.
    checkpoint_file: Path | None = None
    #: TRESOR_DB_POOL_SIZE: database connections per process (PostgreSQL); keep it at or
    #: above the concurrency a process serves, or requests queue for connections.
    db_pool_size: int = 40
    #: TRESOR_SQLITE_SYNCHRONOUS: `normal` (the default) or `full`: SQLite's
    #: `PRAGMA synchronous` in WAL mode. `normal` survives a crash of the process; an
    #: operating-system crash or power loss may undo the last commits since the WAL was
    #: last synced (README, "SQLite durability"). `full` syncs the WAL at every commit.
    sqlite_synchronous: str = "normal"
    #: TRESOR_FAILED_AUTH_LIMIT: failed API-key authentications per client address and
    #: minute, counted across all processes and nodes, before further *failed* attempts
    #: get 429 (a valid key is always served).
    failed_auth_limit: int = 30
    #: TRESOR_TRUSTED_PROXIES: comma-separated addresses and CIDR ranges of the load
    #: balancers and reverse proxies in front of Tresor. Only a request arriving from one of
    #: them has its client address taken from `Forwarded` / `X-Forwarded-For` and its scheme
    #: from `X-Forwarded-Proto`; empty (the default) ignores those headers everywhere.
    #: Kept as canonical CIDR strings (`parse_networks` validated them).
    trusted_proxies: tuple[str, ...] = ()
    #: TRESOR_LIMITS_URL: where the shared limit counters live: empty for the database
    #: (the default), or `redis://host:port/db` for a Redis server all nodes reach.
    limits_url: str = field(default="", repr=False)
    #: TRESOR_LOG_LEVEL: minimum level of the JSON logs.
    log_level: str = "INFO"
    #: TRESOR_RETENTION_INTERVAL: seconds between retention sweeps inside `tresor serve`
    #: (expire consents, lapse double opt-ins, erase and shred what outlived its retention);
    #: 0 turns the periodic sweep off (`tresor retention run` still works).
    retention_interval: float = 3600.0
    #: TRESOR_OTP_MINUTES: how long a self-service one-time code stays valid.
    otp_minutes: int = 10
    #: TRESOR_OTP_ATTEMPTS: wrong tries a one-time code allows before it is void.
    otp_max_attempts: int = 5
    #: TRESOR_OTP_PER_ADDRESS_HOUR: codes one address (or phone) may request per hour.
    otp_per_address_hour: int = 5
    #: TRESOR_OTP_PER_IP_HOUR: codes one client IP address may request per hour.
    otp_per_ip_hour: int = 20
    #: TRESOR_OTP_PER_SUBJECT_HOUR: codes one customer receives per hour across all its
    #: addresses (e-mail and phone together); further requests are answered alike but send
    #: nothing, so the answer does not tell that two addresses belong to one customer.
    otp_per_subject_hour: int = 5
    #: TRESOR_OTP_LOCKOUT_FAILURES: wrong codes for one customer (all addresses together)
    #: after which its sign-in is locked for the next of `otp_lockout_minutes`.
    otp_lockout_failures: int = 10
    #: TRESOR_OTP_LOCKOUT_MINUTES: the escalating lock periods, comma-separated; the last
    #: one repeats. A successful sign-in or a day without a wrong code starts over.
    otp_lockout_minutes: tuple[int, ...] = (15, 60, 1440)
    #: TRESOR_IDENTITY_COOLING_OFF_DAYS: how long after a change of the identifying e-mail
    #: address a privacy-centre session through the new address stays restricted, unless
    #: the old address or a DPO confirms the change first.
    identity_cooling_off_days: int = 7
    #: TRESOR_SELF_SESSION_MINUTES: absolute lifetime of a privacy-centre session.
    self_session_minutes: int = 60
    #: TRESOR_SESSION_IDLE_MINUTES: a privacy-centre or console session without a request
    #: for this long ends (idle timeout, both surfaces).
    session_idle_minutes: int = 15
    #: TRESOR_CONSOLE_SESSION_HOURS: absolute lifetime of a DPO console session.
    console_session_hours: float = 8.0
    #: TRESOR_CONSOLE_SIGNIN_PER_ACCOUNT / _PER_ADDRESS: console sign-ins allowed per 15
    #: minutes for one account (DPO client or single sign-on user) and from one address,
    #: counting failed ones; the rest are refused with 429 until the window moves on.
    console_signin_per_account: int = 10
    console_signin_per_address: int = 30
    #: TRESOR_OIDC_ISSUER: the organisation's OpenID provider (its discovery document is
    #: at `<issuer>/.well-known/openid-configuration`); empty: no single sign-on.
    oidc_issuer: str = ""
    #: TRESOR_OIDC_CLIENT_ID / TRESOR_OIDC_CLIENT_SECRET: Tresor's registration there.
    oidc_client_id: str = ""
    oidc_client_secret: str = field(default="", repr=False)
    #: TRESOR_OIDC_ROLE_CLAIM / TRESOR_OIDC_DPO_VALUE: the ID-token claim (a string or a
    #: list of strings) that must contain this value for the user to get the role dpo.
    oidc_role_claim: str = "groups"
    oidc_dpo_value: str = "dpo"
    #: TRESOR_OIDC_MARKETING_VALUE: the claim's value that gives the role marketing
    #: (campaigns, calendar, reports; issue 21); empty: marketers do not sign in by SSO.
    oidc_marketing_value: str = "marketing"
    #: TRESOR_OIDC_SCOPES: the scopes asked for (space-separated; `openid` always first):
    #: whichever makes the provider put the role claim into the ID token.
    oidc_scopes: str = "openid"
    #: TRESOR_OIDC_NAME: the organisation's name on the console's sign-in button.
    oidc_name: str = "SSO"
    #: TRESOR_KEK_PROVIDER: where the key-encryption keys live: `local` (the keyring file)
    #: or `pkcs11` (a PKCS#11 token; see docs/pkcs11.md).
    kek_provider: str = "local"
    #: TRESOR_PKCS11_MODULE: the PKCS#11 library of the HSM (default: Debian's SoftHSM2).
    pkcs11_module: Path = Path("/usr/lib/softhsm/libsofthsm2.so")
    #: TRESOR_PKCS11_TOKEN: label of the token holding the KEKs.
    pkcs11_token: str = ""
    #: TRESOR_PKCS11_PIN_FILE: file (mode 0600) holding the token's user PIN; preferred
    #: over TRESOR_PKCS11_PIN, which leaks into the process environment.
    pkcs11_pin_file: Path | None = None
    #: TRESOR_PKCS11_PIN: the token's user PIN, when no PIN file is set. Never logged.
    pkcs11_pin: str = field(default="", repr=False)
    #: TRESOR_INLINE_JOBS: "1" (the default) or "0": whether an app that opens its own
    #: vault runs the periodic jobs (sealer, retention) in its own process. `tresor serve`
    #: sets it for the worker processes it starts, which read their settings anew.
    inline_jobs: bool = True
    #: PROMETHEUS_MULTIPROC_DIR: prometheus-client's directory for the metrics of several
    #: processes (the library reads it too); `tresor serve` sets it when it starts more
    #: than one process. Unset: the metrics of this process only.
    metrics_multiproc_dir: Path | None = None
    #: TRESOR_WEBHOOK_ALLOW_PRIVATE: 1 allows webhook URLs (and host names resolving to
    #: addresses) in private, link-local or reserved ranges; refused by default (SSRF).
    webhook_allow_private: bool = False
    #: TRESOR_NATS_URL: the NATS server (JetStream) of recipients using the nats transport.
    nats_url: str = "nats://127.0.0.1:4222"
    #: TRESOR_NOTIFY_INTERVAL: seconds between delivery runs of the jobs process (0: off).
    notify_interval: float = 0.5
    #: TRESOR_NOTIFY_RETRY_SECONDS: wait after a notice's first failed delivery; it doubles
    #: per attempt (with jitter) up to TRESOR_NOTIFY_RETRY_MAX_SECONDS.
    notify_retry_seconds: float = 5.0
    notify_retry_max_seconds: float = 3600.0
    #: TRESOR_NOTIFY_TIMEOUT: seconds a receiver has to answer a notice; a claimed notice
    #: is reserved for three times as long (a crashed node's claims wait that long).
    notify_timeout_seconds: float = 10.0
    #: TRESOR_NOTIFY_MIN_WINDOW_DAYS: a lookup this recent always counts as a receipt of
    #: the subject's data, even for a purpose whose retention after its end is shorter.
    notify_min_window_days: int = 30
    #: TRESOR_MAIL_INTERVAL: seconds between runs of the mail outbox's sender (0: off).
    mail_interval: float = 2.0
    #: TRESOR_MAIL_RETRY_HOURS: how long a queued notice mail is retried before it is
    #: `failed` (sign-in codes are retried only until the code expires).
    mail_retry_hours: float = 24.0
    #: TRESOR_MAIL_RETRY_SECONDS: wait after a mail's first failed attempt; it doubles per
    #: attempt (with jitter) up to TRESOR_MAIL_RETRY_MAX_SECONDS.
    mail_retry_seconds: float = 30.0
    mail_retry_max_seconds: float = 1800.0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def keyring_path(self) -> Path:
        return self.data_dir / "keyring.json"

    @property
    def audit_checkpoint_path(self) -> Path:
        return self.checkpoint_file or self.data_dir / "audit-checkpoints.jsonl"

    @property
    def outbox_dir(self) -> Path:
        return self.data_dir / "outbox"

    @property
    def sms_outbox_dir(self) -> Path:
        """The SMS gateway's file outbox (`vault.sms`, development and tests)."""
        return self.data_dir / "sms-outbox"

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "tresor.sqlite3"

    @property
    def effective_database_url(self) -> str:
        """The configured URL, or the embedded SQLite file in the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.sqlite_path.resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Build settings from environment variables (or a given mapping, for tests)."""
        e = os.environ if env is None else env
        r = EnvReader(e)
        host = e.get("TRESOR_HOST", "127.0.0.1")
        port = r.whole("TRESOR_PORT", 8000, maximum=65535)
        settings = cls(
            data_dir=Path(e.get("TRESOR_DATA_DIR", "./tresor-data")),
            database_url=e.get("TRESOR_DATABASE_URL", ""),
            policies_dir=Path(e["TRESOR_POLICIES"])
            if e.get("TRESOR_POLICIES")
            else default_policies_dir(),
            smtp_url=e.get("TRESOR_SMTP_URL", ""),
            smtp_tls=r.choice(
                "TRESOR_SMTP_TLS",
                default_smtp_tls(e.get("TRESOR_SMTP_URL", "")),
                ("starttls", "tls", "none"),
            ),
            mail_from=e.get("TRESOR_MAIL_FROM", "tresor@localhost"),
            outbox_hours=r.number("TRESOR_OUTBOX_HOURS", 24.0),
            public_url=(
                e["TRESOR_PUBLIC_URL"].rstrip("/")
                if e.get("TRESOR_PUBLIC_URL")
                else listening_url("http", host, port)
            ),
            public_url_set=bool(e.get("TRESOR_PUBLIC_URL")),
            host=host,
            port=port,
            double_opt_in_hours=r.whole("TRESOR_DOI_HOURS", 72),
            dek_cache_size=r.whole("TRESOR_DEK_CACHE", 10000),
            client_cache_seconds=r.number("TRESOR_CLIENT_CACHE_SECONDS", 2.0),
            seal_interval=r.number("TRESOR_SEAL_INTERVAL", 0.2),
            checkpoint_seconds=r.number("TRESOR_AUDIT_CHECKPOINT_SECONDS", 10.0),
            checkpoint_file=Path(e["TRESOR_AUDIT_CHECKPOINT_FILE"])
            if e.get("TRESOR_AUDIT_CHECKPOINT_FILE")
            else None,
            db_pool_size=r.whole("TRESOR_DB_POOL_SIZE", 40),
            sqlite_synchronous=r.checked(
                "normal", sqlite_sync_level, e.get("TRESOR_SQLITE_SYNCHRONOUS", "")
            ),
            failed_auth_limit=r.whole("TRESOR_FAILED_AUTH_LIMIT", 30),
            trusted_proxies=r.checked(
                (),
                parse_networks,
                e.get("TRESOR_TRUSTED_PROXIES", ""),
                "TRESOR_TRUSTED_PROXIES",
            ),
            limits_url=r.checked("", limits_store_url, e.get("TRESOR_LIMITS_URL", "").strip()),
            log_level=r.choice("TRESOR_LOG_LEVEL", "INFO", _LOG_LEVELS, upper=True),
            retention_interval=r.number("TRESOR_RETENTION_INTERVAL", 3600.0),
            otp_minutes=r.whole("TRESOR_OTP_MINUTES", 10),
            otp_max_attempts=r.whole("TRESOR_OTP_ATTEMPTS", 5),
            otp_per_address_hour=r.whole("TRESOR_OTP_PER_ADDRESS_HOUR", 5),
            otp_per_ip_hour=r.whole("TRESOR_OTP_PER_IP_HOUR", 20),
            otp_per_subject_hour=r.whole("TRESOR_OTP_PER_SUBJECT_HOUR", 5),
            otp_lockout_failures=r.whole("TRESOR_OTP_LOCKOUT_FAILURES", 10),
            otp_lockout_minutes=r.checked(
                (15, 60, 1440),
                minutes_list,
                e.get("TRESOR_OTP_LOCKOUT_MINUTES", "15,60,1440"),
                "TRESOR_OTP_LOCKOUT_MINUTES",
            ),
            identity_cooling_off_days=r.whole("TRESOR_IDENTITY_COOLING_OFF_DAYS", 7),
            self_session_minutes=r.whole("TRESOR_SELF_SESSION_MINUTES", 60),
            session_idle_minutes=r.whole("TRESOR_SESSION_IDLE_MINUTES", 15),
            console_session_hours=r.number("TRESOR_CONSOLE_SESSION_HOURS", 8.0),
            console_signin_per_account=r.whole("TRESOR_CONSOLE_SIGNIN_PER_ACCOUNT", 10),
            console_signin_per_address=r.whole("TRESOR_CONSOLE_SIGNIN_PER_ADDRESS", 30),
            oidc_issuer=e.get("TRESOR_OIDC_ISSUER", "").strip().rstrip("/"),
            oidc_client_id=e.get("TRESOR_OIDC_CLIENT_ID", "").strip(),
            oidc_client_secret=e.get("TRESOR_OIDC_CLIENT_SECRET", ""),
            oidc_role_claim=e.get("TRESOR_OIDC_ROLE_CLAIM", "groups").strip() or "groups",
            oidc_dpo_value=e.get("TRESOR_OIDC_DPO_VALUE", "dpo").strip() or "dpo",
            oidc_marketing_value=e.get("TRESOR_OIDC_MARKETING_VALUE", "marketing").strip(),
            oidc_scopes=openid_scopes(e.get("TRESOR_OIDC_SCOPES", "openid")),
            oidc_name=e.get("TRESOR_OIDC_NAME", "SSO").strip() or "SSO",
            kek_provider=r.choice("TRESOR_KEK_PROVIDER", "local", ("local", "pkcs11")),
            pkcs11_module=Path(e.get("TRESOR_PKCS11_MODULE", "/usr/lib/softhsm/libsofthsm2.so")),
            pkcs11_token=e.get("TRESOR_PKCS11_TOKEN", ""),
            pkcs11_pin_file=Path(e["TRESOR_PKCS11_PIN_FILE"])
            if e.get("TRESOR_PKCS11_PIN_FILE")
            else None,
            pkcs11_pin=e.get("TRESOR_PKCS11_PIN", ""),
            inline_jobs=e.get("TRESOR_INLINE_JOBS", "1") == "1",
            metrics_multiproc_dir=Path(e["PROMETHEUS_MULTIPROC_DIR"])
            if e.get("PROMETHEUS_MULTIPROC_DIR")
            else None,
            webhook_allow_private=e.get("TRESOR_WEBHOOK_ALLOW_PRIVATE", "").lower()
            in ("1", "true", "yes"),
            nats_url=e.get("TRESOR_NATS_URL", "nats://127.0.0.1:4222"),
            notify_interval=r.number("TRESOR_NOTIFY_INTERVAL", 0.5),
            notify_retry_seconds=r.number("TRESOR_NOTIFY_RETRY_SECONDS", 5.0),
            notify_retry_max_seconds=r.number("TRESOR_NOTIFY_RETRY_MAX_SECONDS", 3600.0),
            notify_timeout_seconds=r.number("TRESOR_NOTIFY_TIMEOUT", 10.0),
            notify_min_window_days=r.whole("TRESOR_NOTIFY_MIN_WINDOW_DAYS", 30),
            mail_interval=r.number("TRESOR_MAIL_INTERVAL", 2.0),
            mail_retry_hours=r.number("TRESOR_MAIL_RETRY_HOURS", 24.0),
            mail_retry_seconds=r.number("TRESOR_MAIL_RETRY_SECONDS", 30.0),
            mail_retry_max_seconds=r.number("TRESOR_MAIL_RETRY_MAX_SECONDS", 1800.0),
        )
        if r.problems:
            raise SettingsError(r.problems)
        return settings
