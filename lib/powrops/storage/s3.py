"""``s3://bucket/prefix`` repositories on AWS S3, Google Cloud Storage or any S3-compatible store.

The URL names the bucket and an optional key prefix; everything else comes from the repository's
settings (``[backup.storage.primary]`` / ``secondary``):

- ``endpoint_url`` for a non-AWS service (MinIO, Ceph, ...); path-style addressing is used then;
- ``region`` and ``profile``; explicit ``access_key_id`` / ``secret_access_key`` (GCS HMAC keys),
  otherwise boto3's standard credential chain (environment, shared files, instance roles);
- ``server_side_encryption`` (``AES256`` or ``aws:kms``) and ``sse_kms_key_id``, sent with every
  object written.

``kind = "gcs"`` uses the same class against ``https://storage.googleapis.com`` (the XML API's
S3 interoperability) unless an endpoint is set: region ``auto``, checksums only where required,
single deletes instead of batch deletes (GCS has no DeleteObjects) and GCS's own precondition
header for ``if_absent``.

Large objects are streamed as multipart uploads: at most one part is buffered in memory (8 MiB
by default; the part size doubles every 1000 parts so the 10,000-part limit is never hit). An
upload is completed only when the writer's with-block exits cleanly and aborted otherwise; small
objects are one PUT. A multipart upload whose abort could not reach the service stays pending
(invisible, not an object): a bucket lifecycle rule ``AbortIncompleteMultipartUpload`` cleans
those up.

boto3 is imported on first use only: importing this module is cheap. Calls retry three times
(botocore's standard mode) with a 5 s connect and 60 s read timeout, so an endpoint that refuses
connections fails in seconds with :class:`~powrops.errors.StorageUnreachable` naming the
endpoint and bucket, and one that accepts and stays silent in four minutes a call.
:meth:`S3Repository.failing_fast` is the archive command's repository: no retries of its own
(PostgreSQL runs the command again) and a shorter read timeout, so that a silent endpoint
neither holds the archiver for minutes nor keeps a server that is shutting down waiting.
"""

from __future__ import annotations

import builtins
import io
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, BinaryIO, Literal
from urllib.parse import unquote, urlsplit

from powrops.errors import (
    ObjectExists,
    ObjectNotFound,
    StorageError,
    StorageUnreachable,
)
from powrops.storage.base import ObjectInfo, Repository, safe_url, validate_key, validate_prefix
from powrops.storage.registry import register_scheme

if TYPE_CHECKING:
    from powrops.config import Repository as RepositorySettings

MiB = 1024 * 1024
DEFAULT_PART_SIZE = 8 * MiB
MIN_PART_SIZE = 5 * MiB  # S3's minimum for every part but the last
MAX_PART_SIZE = 5 * 1024 * MiB
MAX_PARTS = 10_000
PARTS_PER_DOUBLING = 1000
DELETE_BATCH = 1000
GCS_ENDPOINT = "https://storage.googleapis.com"

_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_DENIED = {
    "AccessDenied",
    "403",
    "Forbidden",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AllAccessDisabled",
}


@dataclass(frozen=True)
class S3Options:
    """How to reach and write to the bucket; secrets are kept out of ``repr``."""

    kind: Literal["s3", "gcs"] = "s3"
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    server_side_encryption: str | None = None
    sse_kms_key_id: str | None = None
    part_size: int = DEFAULT_PART_SIZE
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    max_attempts: int = 3

    @classmethod
    def from_settings(cls, settings: RepositorySettings | None) -> S3Options:
        if settings is None:
            return cls()
        key = settings.access_key_id.get_secret_value() if settings.access_key_id else None
        secret = (
            settings.secret_access_key.get_secret_value() if settings.secret_access_key else None
        )
        return cls(
            kind="gcs" if settings.kind == "gcs" else "s3",
            endpoint_url=settings.endpoint_url,
            region=settings.region,
            profile=settings.profile,
            access_key_id=key or None,
            secret_access_key=secret or None,
            server_side_encryption=settings.server_side_encryption,
            sse_kms_key_id=settings.sse_kms_key_id,
        )

    @property
    def endpoint(self) -> str | None:
        """The endpoint to use: the configured one, GCS's for kind gcs, else AWS's default."""
        if self.endpoint_url:
            return self.endpoint_url
        return GCS_ENDPOINT if self.kind == "gcs" else None

    def check(self, where: str) -> None:
        if bool(self.access_key_id) != bool(self.secret_access_key):
            raise StorageError(f"{where}: access_key_id and secret_access_key must be set together")
        if self.sse_kms_key_id and self.server_side_encryption != "aws:kms":
            raise StorageError(f"{where}: sse_kms_key_id needs server_side_encryption = 'aws:kms'")
        if not MIN_PART_SIZE <= self.part_size <= MAX_PART_SIZE:
            raise StorageError(
                f"{where}: part size {self.part_size} is outside S3's limits "
                f"({MIN_PART_SIZE}..{MAX_PART_SIZE} bytes)"
            )


def parse_s3_url(url: str) -> tuple[str, str]:
    """``(bucket, prefix)`` of ``s3://bucket/some/prefix``; the prefix ends in '/' or is ''."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise StorageError(f"invalid repository URL {safe_url(url)}: {exc}") from None
    if parts.scheme.lower() != "s3":
        raise StorageError(f"{safe_url(url)} is not an s3:// URL")
    if "@" in parts.netloc:
        raise StorageError(
            f"repository URL {safe_url(url)} must not contain credentials: "
            "set access_key_id/secret_access_key or use the AWS credential chain"
        )
    if parts.query or parts.fragment:
        raise StorageError(f"repository URL {safe_url(url)} must not have a query or fragment")
    bucket = parts.netloc
    if not bucket or not all(c.isalnum() or c in "._-" for c in bucket):
        raise StorageError(f"repository URL {safe_url(url)} has no valid bucket name")
    prefix = unquote(parts.path).strip("/")
    if prefix:
        validate_key(prefix)
        prefix += "/"
    return bucket, prefix


class S3Repository(Repository):
    """A bucket (and key prefix) on an S3-compatible service, through boto3."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        options: S3Options | None = None,
        *,
        client: Any = None,
    ) -> None:
        """``client``: an existing boto3 S3 client to share (e.g. another repository's
        ``.client`` on the same service); by default one is made from ``options`` on first use.
        """
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.options = options or S3Options()
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.options.check(self.url)
        self._client_instance: Any = client
        self._lock = threading.Lock()
        self._bucket_seen = False
        self._sse: dict[str, str] = {}
        if self.options.server_side_encryption:
            self._sse["ServerSideEncryption"] = self.options.server_side_encryption
        if self.options.sse_kms_key_id:
            self._sse["SSEKMSKeyId"] = self.options.sse_kms_key_id

    @classmethod
    def from_url(
        cls,
        url: str,
        settings: RepositorySettings | None,
        environ: Mapping[str, str],
    ) -> S3Repository:
        bucket, prefix = parse_s3_url(url)
        return cls(bucket, prefix, S3Options.from_settings(settings))

    def failing_fast(self, silence: float) -> S3Repository:
        options = replace(self.options, read_timeout=silence, max_attempts=0)
        return S3Repository(self.bucket, self.prefix, options)

    # --- the client --------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """The endpoint URL for messages (AWS's regional default when none is configured)."""
        if self._client_instance is not None:
            return str(self._client_instance.meta.endpoint_url)
        return self.options.endpoint or "the default AWS S3 endpoint"

    @property
    def client(self) -> Any:
        """The boto3 S3 client, created on first use."""
        with self._lock:
            if self._client_instance is None:
                self._client_instance = self._make_client()
            return self._client_instance

    def _make_client(self) -> Any:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError

        opts = self.options
        compatible = opts.kind == "gcs" or opts.endpoint_url is not None
        checksums = "when_required" if compatible else "when_supported"
        region = opts.region or ("auto" if opts.kind == "gcs" else None)
        config = Config(
            connect_timeout=opts.connect_timeout,
            read_timeout=opts.read_timeout,
            retries={"max_attempts": opts.max_attempts, "mode": "standard"},
            s3={"addressing_style": "path" if opts.endpoint else "auto"},
            request_checksum_calculation=checksums,
            response_checksum_validation=checksums,
            user_agent_extra="powrops",
        )
        try:
            session = boto3.session.Session(
                profile_name=opts.profile,
                region_name=region,
                aws_access_key_id=opts.access_key_id,
                aws_secret_access_key=opts.secret_access_key,
            )
            client = session.client("s3", endpoint_url=opts.endpoint, config=config)
        except BotoCoreError as exc:
            raise StorageError(f"cannot set up the S3 client for {self.url}: {exc}") from exc
        if opts.kind == "gcs":
            client.meta.events.register("before-call.s3.PutObject", _gcs_if_absent)
        return client

    # --- error translation -------------------------------------------------------------------

    def _translate(self, exc: BaseException, action: str, key: str | None) -> StorageError | None:
        """The StorageError for a botocore/urllib3 failure, or None for anything else."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
            ReadTimeoutError,
        )
        from urllib3.exceptions import HTTPError as Urllib3Error

        where = self.describe(key) if key is not None else self.url
        details: dict[str, Any] = {"url": self.url, "endpoint": self.endpoint, "key": key}
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            message = error.get("Message") or code
            if code in _NOT_FOUND:
                return ObjectNotFound(f"{where} does not exist", **details)
            if code == "NoSuchBucket":
                return StorageError(
                    f"bucket {self.bucket!r} does not exist at {self.endpoint}", **details
                )
            if code in ("PreconditionFailed", "412"):
                return ObjectExists(f"{where} already exists", **details)
            if code in _DENIED:
                return StorageError(
                    f"cannot {action} {where}: access denied by {self.endpoint} ({code}); "
                    "check the credentials and the bucket policy",
                    **details,
                )
            return StorageError(
                f"cannot {action} {where} at {self.endpoint}: {code}: {message}", **details
            )
        unreachable = (
            EndpointConnectionError,
            ConnectTimeoutError,
            ReadTimeoutError,
            ConnectionClosedError,
            Urllib3Error,
            ConnectionError,
        )
        if isinstance(exc, unreachable):
            return StorageUnreachable(
                f"cannot {action} {where}: endpoint {self.endpoint} (bucket {self.bucket!r}) "
                f"did not answer: {exc}",
                **details,
            )
        if isinstance(exc, NoCredentialsError):
            return StorageError(
                f"cannot {action} {where}: no credentials found; set access_key_id and "
                "secret_access_key, a profile, or the AWS_* environment variables",
                **details,
            )
        if isinstance(exc, BotoCoreError):
            return StorageError(f"cannot {action} {where} at {self.endpoint}: {exc}", **details)
        return None

    @contextmanager
    def _errors(self, action: str, key: str | None = None) -> Iterator[None]:
        try:
            yield
        except StorageError:
            raise
        except Exception as exc:
            mapped = self._translate(exc, action, key)
            if mapped is None:
                raise
            raise mapped from exc

    def _check_bucket(self) -> None:
        """A HEAD 404 does not say whether the key or the bucket is missing: ask once."""
        if self._bucket_seen:
            return
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            mapped = self._translate(exc, "check the bucket of", None)
            if mapped is None:
                raise
            if isinstance(mapped, ObjectNotFound):
                mapped = StorageError(
                    f"bucket {self.bucket!r} does not exist at {self.endpoint}",
                    url=self.url,
                    endpoint=self.endpoint,
                )
            raise mapped from exc
        self._bucket_seen = True

    # --- the contract ------------------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> ObjectInfo:
        name = self.prefix + validate_key(key)
        if if_absent and self.exists(key):
            raise ObjectExists(f"{self.describe(key)} already exists", url=self.url, key=key)
        extra: dict[str, Any] = dict(self._sse)
        if if_absent:  # atomic where the service supports conditional writes (GCS: see below)
            extra["IfNoneMatch"] = "*"
        with self._errors("write", key):
            self.client.put_object(Bucket=self.bucket, Key=name, Body=data, **extra)
        self._bucket_seen = True
        return ObjectInfo(key, len(data), None)

    @contextmanager
    def open_write(self, key: str) -> Iterator[BinaryIO]:
        upload = _Upload(self, validate_key(key))
        writer = io.BufferedWriter(upload, buffer_size=64 * 1024)
        try:
            yield writer
            if not writer.closed:
                writer.flush()
            upload.complete()
        except BaseException as exc:
            upload.abort(exc)
            raise
        finally:
            upload.finished = True
            writer.close()

    def get_bytes(self, key: str) -> bytes:
        name = self.prefix + validate_key(key)
        with self._errors("read", key):
            response = self.client.get_object(Bucket=self.bucket, Key=name)
            data: bytes = response["Body"].read()
        return data

    @contextmanager
    def open_read(self, key: str) -> Iterator[BinaryIO]:
        name = self.prefix + validate_key(key)
        with self._errors("read", key):
            response = self.client.get_object(Bucket=self.bucket, Key=name)
        reader = io.BufferedReader(_Body(self, key, response["Body"]), buffer_size=1 * MiB)
        with reader:
            yield reader

    def stat(self, key: str) -> ObjectInfo | None:
        name = self.prefix + validate_key(key)
        try:
            with self._errors("stat", key):
                head = self.client.head_object(Bucket=self.bucket, Key=name)
        except ObjectNotFound:
            self._check_bucket()
            return None
        return ObjectInfo(key, int(head["ContentLength"]), head.get("LastModified"))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        full = self.prefix + validate_prefix(prefix)
        skip = len(self.prefix)
        with self._errors("list", prefix or None):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=full
            )
            for page in pages:
                for item in page.get("Contents", ()):
                    key = str(item["Key"])[skip:]
                    if key and not key.endswith("/"):  # skip "directory" placeholder objects
                        yield ObjectInfo(key, int(item["Size"]), item.get("LastModified"))

    def unfinished(self, prefix: str = "") -> Iterator[ObjectInfo]:
        skip = len(self.prefix)
        for upload in self._uploads(prefix):
            yield ObjectInfo(str(upload["Key"])[skip:], 0, upload.get("Initiated"))

    def abort_unfinished(self, prefix: str) -> int:
        uploads = builtins.list(self._uploads(prefix))
        for upload in uploads:
            key = str(upload["Key"])[len(self.prefix) :]
            with self._errors("abort the unfinished upload of", key):
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )
        return len(uploads)

    def _uploads(self, prefix: str) -> Iterator[dict[str, Any]]:
        full = self.prefix + validate_prefix(prefix)
        with self._errors("list the unfinished uploads in", prefix or None):
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=full
            )
            for page in pages:
                yield from page.get("Uploads", ())

    def delete(self, key: str) -> None:
        name = self.prefix + validate_key(key)
        with self._errors("delete", key):
            self.client.delete_object(Bucket=self.bucket, Key=name)

    def delete_many(self, keys: Iterable[str]) -> None:
        if self.options.kind == "gcs":
            for key in keys:
                self.delete(key)
            return
        batch: builtins.list[str] = []
        for key in keys:
            batch.append(self.prefix + validate_key(key))
            if len(batch) == DELETE_BATCH:
                self._delete_batch(batch)
                batch = []
        if batch:
            self._delete_batch(batch)

    def _delete_batch(self, names: Sequence[str]) -> None:
        with self._errors("delete objects in"):
            response = self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": name} for name in names], "Quiet": True},
            )
        errors = [e for e in response.get("Errors", ()) if e.get("Code") != "NoSuchKey"]
        if errors:
            shown = "; ".join(
                f"{e.get('Key')}: {e.get('Code')} {e.get('Message')}" for e in errors[:5]
            )
            raise StorageError(
                f"cannot delete {len(errors)} object(s) in {self.url}: {shown}",
                url=self.url,
                keys=[e.get("Key") for e in errors],
            )


def _gcs_if_absent(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """Translate S3's ``If-None-Match: *`` into GCS's ``x-goog-if-generation-match: 0``."""
    headers = params.get("headers", {})
    if headers.pop("If-None-Match", None) == "*":
        headers["x-goog-if-generation-match"] = "0"


def part_size_for(part_number: int, base: int) -> int:
    """The size of part ``part_number`` (1-based): ``base``, doubled every 1000 parts."""
    doublings: int = (part_number - 1) // PARTS_PER_DOUBLING
    return min(base << doublings, MAX_PART_SIZE)


class _Upload(io.RawIOBase):
    """The raw sink behind ``open_write``: one PUT when small, else a multipart upload."""

    def __init__(self, repo: S3Repository, key: str) -> None:
        super().__init__()
        self.repo = repo
        self.key = key
        self.name_in_bucket = repo.prefix + key
        self.buffer = bytearray()
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []
        self.finished = False

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        size = len(view)
        if self.finished:
            return size  # the upload was abandoned; what is left in a buffer goes nowhere
        while view:
            target = part_size_for(len(self.parts) + 1, self.repo.options.part_size)
            room = target - len(self.buffer)
            self.buffer += view[:room]
            view = view[room:]
            if len(self.buffer) >= target:
                self._upload_part()
        return size

    def _upload_part(self) -> None:
        repo = self.repo
        if self.upload_id is None:
            with repo._errors("start a multipart upload of", self.key):
                created = repo.client.create_multipart_upload(
                    Bucket=repo.bucket, Key=self.name_in_bucket, **repo._sse
                )
            self.upload_id = str(created["UploadId"])
        number = len(self.parts) + 1
        if number > MAX_PARTS:
            raise StorageError(f"{repo.describe(self.key)} needs more than {MAX_PARTS} parts")
        with repo._errors(f"upload part {number} of", self.key):
            response = repo.client.upload_part(
                Bucket=repo.bucket,
                Key=self.name_in_bucket,
                UploadId=self.upload_id,
                PartNumber=number,
                Body=self.buffer,
            )
        self.parts.append({"PartNumber": number, "ETag": response["ETag"]})
        self.buffer = bytearray()

    def complete(self) -> None:
        repo = self.repo
        if self.upload_id is None:
            with repo._errors("write", self.key):
                repo.client.put_object(
                    Bucket=repo.bucket, Key=self.name_in_bucket, Body=self.buffer, **repo._sse
                )
            self.buffer = bytearray()
            return
        if self.buffer:
            self._upload_part()
        with repo._errors("complete the multipart upload of", self.key):
            repo.client.complete_multipart_upload(
                Bucket=repo.bucket,
                Key=self.name_in_bucket,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": self.parts},
            )
        self.upload_id = None

    def abort(self, cause: BaseException) -> None:
        """Abort a started multipart upload; a failure to do so is noted on ``cause``."""
        self.buffer = bytearray()
        if self.upload_id is None:
            return
        repo = self.repo
        try:
            with repo._errors("abort the multipart upload of", self.key):
                repo.client.abort_multipart_upload(
                    Bucket=repo.bucket, Key=self.name_in_bucket, UploadId=self.upload_id
                )
        except Exception as exc:
            cause.add_note(
                f"the unfinished multipart upload {self.upload_id} could not be aborted ({exc}); "
                "it holds no object and a lifecycle rule AbortIncompleteMultipartUpload removes it"
            )
        self.upload_id = None


class _Body(io.RawIOBase):
    """A botocore response body as a raw stream whose failures are StorageErrors."""

    def __init__(self, repo: S3Repository, key: str, body: Any) -> None:
        super().__init__()
        self.repo = repo
        self.key = key
        self.body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        with self.repo._errors("read", self.key):
            data = self.body.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self.body.close()
        super().close()


register_scheme("s3", S3Repository)
