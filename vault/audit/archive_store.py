"""Where archived audit segments go: a directory or an S3-compatible bucket.

`tresor audit archive` needs three things of a destination: to be checked before anything
is changed (an unreachable store must stop the run with nothing done), to take a file whole
or not at all (a crash must never leave half a segment under the final name), and to hand
a file back for `verify --archive`. A directory does the second by writing a temporary name,
fsyncing and renaming; S3 by `PutObject`, which is atomic by itself. Credentials never
appear in a URL or in the database: S3 takes them from the standard AWS environment
(`AWS_ACCESS_KEY_ID`, …) and the endpoint from `TRESOR_ARCHIVE_S3_ENDPOINT` or
`AWS_ENDPOINT_URL`.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from vault.errors import InvalidInput


class ArchiveUnreachable(InvalidInput):
    """The archive destination is malformed, missing or refuses us: nothing was changed."""


class ArchiveStore(Protocol):
    #: The destination as the operator named it (no credentials).
    url: str

    def check(self) -> None:
        """Raise `ArchiveUnreachable` unless files can be written and read here."""
        ...

    def put(self, name: str, source: Path) -> None:
        """Store the file `source` under `name`, whole or not at all (replacing an older
        file of that name)."""
        ...

    def get(self, name: str) -> bytes | None:
        """The file's bytes, None when there is no such file."""
        ...

    def fetch(self, name: str, target: Path) -> bool:
        """Copy the file to `target` (streamed: segments can be large); False when there is
        no such file."""
        ...

    def url_of(self, name: str) -> str: ...


@dataclass
class DirectoryStore:
    """Segments as files in a local (or mounted) directory."""

    path: Path
    url: str

    def check(self) -> None:
        if not self.path.is_dir():
            raise ArchiveUnreachable(f"archive directory {self.path} does not exist")
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise ArchiveUnreachable(f"archive directory {self.path} is not writable")

    def put(self, name: str, source: Path) -> None:
        final = self.path / name
        tmp = self.path / f".{name}.tmp-{os.getpid()}"
        shutil.copyfile(source, tmp)
        with tmp.open("rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
        directory = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def get(self, name: str) -> bytes | None:
        try:
            return (self.path / name).read_bytes()
        except FileNotFoundError:
            return None

    def fetch(self, name: str, target: Path) -> bool:
        try:
            shutil.copyfile(self.path / name, target)
        except FileNotFoundError:
            return False
        return True

    def url_of(self, name: str) -> str:
        return f"{self.url.rstrip('/')}/{name}"


class S3Store:
    """Segments as objects under a prefix of an S3-compatible bucket (boto3)."""

    def __init__(self, url: str, bucket: str, prefix: str, endpoint: str | None) -> None:
        import boto3
        from botocore.config import Config

        self.url, self.bucket, self.prefix = url, bucket, prefix.strip("/")
        config = Config(connect_timeout=5, read_timeout=60, retries={"max_attempts": 2})
        self._s3: Any = boto3.client("s3", endpoint_url=endpoint, config=config)

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def check(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._s3.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as exc:
            raise ArchiveUnreachable(
                f"archive bucket {self.bucket} is not reachable ({type(exc).__name__})"
            ) from None

    def put(self, name: str, source: Path) -> None:
        # A single or multipart upload: either way the object appears only when complete.
        self._s3.upload_file(str(source), self.bucket, self._key(name))

    def get(self, name: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            answer = self._s3.get_object(Bucket=self.bucket, Key=self._key(name))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        body: bytes = answer["Body"].read()
        return body

    def fetch(self, name: str, target: Path) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._s3.download_file(self.bucket, self._key(name), str(target))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return False
            raise
        return True

    def url_of(self, name: str) -> str:
        return f"s3://{self.bucket}/{self._key(name)}"


def open_store(url: str | None, environ: dict[str, str] | None = None) -> ArchiveStore:
    """The store a URL names (`file://…`, a plain path, or `s3://bucket/prefix`), falling
    back to `TRESOR_ARCHIVE_URL`; `ArchiveUnreachable` for no or an unknown URL."""
    env = os.environ if environ is None else environ
    url = url or env.get("TRESOR_ARCHIVE_URL") or ""
    if not url.strip():
        raise ArchiveUnreachable("no archive destination: give a URL or set TRESOR_ARCHIVE_URL")
    parts = urlsplit(url)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ArchiveUnreachable("an s3:// archive URL needs a bucket: s3://bucket/prefix")
        endpoint = env.get("TRESOR_ARCHIVE_S3_ENDPOINT") or env.get("AWS_ENDPOINT_URL") or None
        return S3Store(url, parts.netloc, parts.path, endpoint)
    if parts.scheme == "file":
        return DirectoryStore(Path(unquote(parts.path)), url)
    if parts.scheme == "" or (len(parts.scheme) == 1 and os.name == "nt"):
        return DirectoryStore(Path(url).expanduser(), url)
    raise ArchiveUnreachable(f"archive URL scheme {parts.scheme!r} is not supported (file, s3)")
