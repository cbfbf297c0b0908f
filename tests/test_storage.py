"""Backup repositories: one contract suite over file://, s3:// and both with encryption.

The s3:// cases run against ``moto_server``, moto's S3 API emulator, started as a separate
process on 127.0.0.1 (tests/s3server.py) and reached over HTTP through boto3; it stands in for
AWS S3 and GCS's S3-compatible endpoint. Faults are real too: the server process is killed in
the middle of a multipart upload, the network in front of it is cut, and a closed port stands in
for an unreachable endpoint.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from powrops import config
from powrops.errors import (
    DecryptionError,
    EncryptionKeyError,
    ObjectExists,
    ObjectNotFound,
    StorageError,
    StorageUnreachable,
)
from powrops.storage import FileRepository, Repository, open_repository, s3
from powrops.storage.crypto import (
    HEADER,
    RECORD_OVERHEAD,
    EncryptedRepository,
    EncryptionKey,
    decrypt_bytes,
    encrypt_bytes,
    load_key,
    parse_key,
)
from powrops.storage.s3 import S3Options, S3Repository
from s3server import Relay, S3Server, free_port

MiB = 1024 * 1024
KEY = EncryptionKey(bytes(range(32)), "test key")
OTHER_KEY = EncryptionKey(bytes(range(1, 33)), "other test key")
KINDS = ["file", "s3", "file+enc", "s3+enc"]


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    """One moto_server process for this module (killed at the end)."""
    server = S3Server.start()
    yield server
    server.close()


def s3_options(endpoint_url: str, **overrides: Any) -> S3Options:
    values: dict[str, Any] = {
        "endpoint_url": endpoint_url,
        "region": S3Server.REGION,
        "part_size": 5 * MiB,
        **S3Server.CREDENTIALS,
    }
    values.update(overrides)
    return S3Options(**values)


def new_bucket(server: S3Server) -> str:
    name = "powrops-" + uuid.uuid4().hex[:12]
    server.create_bucket(name)
    return name


@pytest.fixture(scope="module")
def s3_client(s3_server: S3Server) -> Any:
    """powrops' own boto3 client for the server, shared to save ~0.2 s per test."""
    return S3Repository("unused", "", s3_options(s3_server.endpoint_url)).client


@pytest.fixture
def s3_repo(s3_server: S3Server, s3_client: Any) -> S3Repository:
    """An S3 repository in a new bucket, under a key prefix."""
    options = s3_options(s3_server.endpoint_url)
    return S3Repository(new_bucket(s3_server), "repo/prefix", options, client=s3_client)


@pytest.fixture(params=KINDS)
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Repository:
    """A fresh, empty repository of each kind."""
    kind: str = request.param
    inner: Repository
    if kind.startswith("s3"):
        inner = request.getfixturevalue("s3_repo")
    else:
        inner = FileRepository(tmp_path / "repo")
    return EncryptedRepository(inner, KEY) if kind.endswith("+enc") else inner


def plain(repository: Repository) -> Repository:
    """The repository underneath any encryption (what is really stored)."""
    return repository.inner if isinstance(repository, EncryptedRepository) else repository


def pending_uploads(repository: Repository) -> list[Any]:
    inner = plain(repository)
    assert isinstance(inner, S3Repository)
    listing = inner.client.list_multipart_uploads(Bucket=inner.bucket)
    return list(listing.get("Uploads", []))


def pieces(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    """``data`` cut into pieces of the given sizes, cycling."""
    offset, index = 0, 0
    while offset < len(data):
        size = sizes[index % len(sizes)]
        yield data[offset : offset + size]
        offset += size
        index += 1


# --- the contract, for every kind ------------------------------------------------------------


def test_bytes_round_trip(repo: Repository) -> None:
    key = "backups/20261126T061500F/backup.json"
    info = repo.put_bytes(key, b'{"label": "20261126T061500F"}')
    assert info.key == key
    assert repo.get_bytes(key) == b'{"label": "20261126T061500F"}'
    assert repo.exists(key)
    repo.put_bytes(key, b"second version")
    assert repo.get_bytes(key) == b"second version"
    repo.put_bytes("empty", b"")
    assert repo.get_bytes("empty") == b""
    with repo.open_read("empty") as stream:
        assert stream.read() == b""
    size = repo.stat(key)
    assert size is not None and size.key == key
    stored = len(plain(repo).get_bytes(key))
    assert size.size == stored  # stored size, encrypted or not
    assert (stored > len(b"second version")) == isinstance(repo, EncryptedRepository)


def test_missing_objects(repo: Repository) -> None:
    assert repo.stat("wal/000000010000000000000001") is None
    assert not repo.exists("wal/000000010000000000000001")
    with pytest.raises(ObjectNotFound, match="000000010000000000000001"):
        repo.get_bytes("wal/000000010000000000000001")
    with pytest.raises(ObjectNotFound), repo.open_read("wal/000000010000000000000001"):
        pass


def test_streamed_20_mib_round_trip(repo: Repository) -> None:
    data = random.Random(7).randbytes(20 * MiB + 12345)
    with repo.open_write("backups/big/base.tar.zst") as writer:
        for piece in pieces(data, [MiB + 7, 3, 3 * MiB, 65536]):
            writer.write(piece)
        assert not repo.exists("backups/big/base.tar.zst")  # nothing visible before the end
    digest = hashlib.sha256()
    with repo.open_read("backups/big/base.tar.zst") as reader:
        while block := reader.read(777_777):
            digest.update(block)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    assert repo.get_bytes("backups/big/base.tar.zst") == data
    assert [o.key for o in repo.list("backups/")] == ["backups/big/base.tar.zst"]


def test_listing_is_recursive_and_sorted(repo: Repository) -> None:
    keys = ["z", "a-b", "a/b/c", "a.b", "a/c", "backups/2026/x", "backups/2025/y", "é", "A"]
    for key in keys:
        repo.put_bytes(key, key.encode())
    assert [o.key for o in repo.list()] == sorted(keys)
    assert [o.key for o in repo.list("a/")] == ["a/b/c", "a/c"]
    assert [o.key for o in repo.list("a")] == ["a-b", "a.b", "a/b/c", "a/c"]
    assert [o.key for o in repo.list("backups/202")] == ["backups/2025/y", "backups/2026/x"]
    assert list(repo.list("nothing/")) == []
    assert all(o.size > 0 for o in repo.list())


def test_delete_and_delete_many(repo: Repository) -> None:
    for key in ("wal/1", "wal/2", "wal/3", "keep/me"):
        repo.put_bytes(key, b"x")
    repo.delete("wal/1")
    repo.delete("wal/1")  # already gone: not an error
    assert not repo.exists("wal/1")
    repo.delete_many(["wal/2", "wal/3", "wal/never-existed"])
    assert [o.key for o in repo.list()] == ["keep/me"]
    repo.delete_many([])


def test_if_absent_never_replaces(repo: Repository) -> None:
    repo.put_bytes("wal/000000010000000000000002", b"first", if_absent=True)
    with pytest.raises(ObjectExists, match="000000010000000000000002"):
        repo.put_bytes("wal/000000010000000000000002", b"second", if_absent=True)
    assert repo.get_bytes("wal/000000010000000000000002") == b"first"


BAD_KEYS = [
    "",
    "/abs",
    "a/../b",
    "..",
    "a//b",
    "a/",
    "./a",
    "a\\b",
    "nul\x00",
    "a/.x.powrops-tmp.1",
]


def test_invalid_keys_are_refused(repo: Repository) -> None:
    for key in BAD_KEYS:
        with pytest.raises(StorageError, match="invalid key"):
            repo.put_bytes(key, b"x")
        with pytest.raises(StorageError, match="invalid key"):
            repo.get_bytes(key)
        with pytest.raises(StorageError, match="invalid key"):
            repo.stat(key)
        with pytest.raises(StorageError, match="invalid key"):
            repo.delete(key)
        with pytest.raises(StorageError, match="invalid key"), repo.open_write(key):
            pass
    assert list(repo.list()) == []


def test_invalid_prefix_is_refused(repo: Repository) -> None:
    for prefix in ("../", "/etc", "a//", "a/../"):
        with pytest.raises(StorageError, match="invalid prefix"):
            list(repo.list(prefix))


def test_exception_inside_open_write_leaves_nothing(repo: Repository) -> None:
    repo.put_bytes("backups/x/base.tar.zst", b"the good old version")
    for key in ("backups/x/base.tar.zst", "backups/y/base.tar.zst"):
        with (
            pytest.raises(RuntimeError, match="pg_basebackup died"),
            repo.open_write(key) as writer,
        ):
            writer.write(os.urandom(11 * MiB))  # s3: two parts uploaded already
            raise RuntimeError("pg_basebackup died")
    assert repo.get_bytes("backups/x/base.tar.zst") == b"the good old version"
    assert not repo.exists("backups/y/base.tar.zst")
    assert [o.key for o in repo.list()] == ["backups/x/base.tar.zst"]
    if isinstance(plain(repo), S3Repository):
        assert pending_uploads(repo) == []
    else:
        inner = plain(repo)
        assert isinstance(inner, FileRepository)
        leftovers = [p.name for p in inner.root.rglob("*") if p.is_file()]
        assert leftovers == ["base.tar.zst"]


def test_writer_closed_early_still_commits(repo: Repository) -> None:
    with repo.open_write("early") as writer:
        writer.write(b"abc")
        writer.close()
    assert repo.get_bytes("early") == b"abc"


# --- file:// ---------------------------------------------------------------------------------


def test_file_modes_are_private(tmp_path: Path) -> None:
    old = os.umask(0)  # a permissive umask must not widen anything
    try:
        repo = open_repository((tmp_path / "repo").as_uri())
        repo.put_bytes("backups/a/backup.json", b"{}")
        with repo.open_write("wal/000000010000000000000001") as writer:
            writer.write(b"wal")
    finally:
        os.umask(old)
    root = tmp_path / "repo"
    for directory in (root, root / "backups", root / "backups/a", root / "wal"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    for file in (root / "backups/a/backup.json", root / "wal/000000010000000000000001"):
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file


def test_file_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    absolute = open_repository(f"file://{tmp_path}/abs")
    assert isinstance(absolute, FileRepository) and absolute.root == tmp_path / "abs"
    assert absolute.url == f"file://{tmp_path}/abs"
    assert open_repository(f"file://localhost{tmp_path}/abs").url == absolute.url
    monkeypatch.chdir(tmp_path)
    relative = open_repository("file://relative/repo")
    assert isinstance(relative, FileRepository)
    assert relative.root == tmp_path / "relative" / "repo"
    spaced = open_repository(f"file://{tmp_path}/with%20space")
    assert isinstance(spaced, FileRepository) and spaced.root == tmp_path / "with space"


def test_file_missing_or_blocked_parent(tmp_path: Path) -> None:
    missing = open_repository(f"file://{tmp_path}/no/such/parent")
    with pytest.raises(StorageError, match=f"{tmp_path}/no/such.*does not exist"):
        missing.put_bytes("k", b"x")
    assert not (tmp_path / "no").exists()
    (tmp_path / "file").write_bytes(b"")
    blocked = open_repository(f"file://{tmp_path}/file/repo")
    with pytest.raises(StorageError, match=f"{tmp_path}/file/repo"):
        blocked.put_bytes("k", b"x")
    repo = open_repository(f"file://{tmp_path}/repo")
    repo.put_bytes("a", b"x")
    with pytest.raises(StorageError, match="in the way"):
        repo.put_bytes("a/b", b"x")


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to the server's OS user needs root")
def test_file_repository_this_os_user_may_not_enter_is_a_storage_error(tmp_path: Path) -> None:
    """The server's archive_command (its OS user) pushing WAL into a repository root made
    first, 0700: one line naming the path (wal push exits 3), not a crash of powrops."""
    from powrops.pg.cluster import ensure_os_user

    repo = FileRepository(tmp_path / "repo")
    repo.put_bytes("backups/l1/backup.json", b"{}")
    os.seteuid(ensure_os_user("powrops").uid)
    try:
        with pytest.raises(StorageError, match=r"cannot \w+ .*repo/wal.*: Permission denied"):
            repo.put_bytes("wal/0000000100000000/000000010000000000000001.zst", b"x",
                           if_absent=True)  # fmt: skip
        with pytest.raises(StorageError, match=r"cannot \w+ .*repo/wal.*: Permission denied"):
            repo.put_bytes("wal/0000000100000000/000000010000000000000001.zst", b"x")
    finally:
        os.seteuid(0)


@pytest.mark.skipif(os.geteuid() != 0, reason="writing as root into another user's folder")
def test_file_repository_of_the_server_os_user_stays_theirs_when_root_writes() -> None:
    """A repository directory the DBA gave the server's OS user (its archive_command writes
    WAL there): what root's commands add (a backup, the verification state, a new WAL
    folder) belongs to that user, who can then enter, read and write every part of it."""
    from powrops.pg.cluster import ensure_os_user

    server = ensure_os_user("powrops")
    tmp_path = Path(tempfile.mkdtemp(prefix="powrops-owner-"))  # pytest's is root's, 0700
    tmp_path.chmod(0o711)
    try:
        _root_writes_into_the_server_os_users_repository(tmp_path, server.uid, server.gid)
    finally:
        shutil.rmtree(tmp_path)


def _root_writes_into_the_server_os_users_repository(tmp_path: Path, uid: int, gid: int) -> None:
    root = tmp_path / "repo"
    root.mkdir(mode=0o700)
    os.chown(root, uid, gid)
    repo = FileRepository(root)
    repo.put_bytes("backups/l1/backup.json", b"{}")
    with repo.open_write("wal/0000000100000000/000000010000000000000001.zst") as writer:
        writer.write(b"wal")
    made = [root / "backups", root / "backups/l1", root / "backups/l1/backup.json",
            root / "wal", root / "wal/0000000100000000",
            root / "wal/0000000100000000/000000010000000000000001.zst"]  # fmt: skip
    for path in made:
        info = path.stat()
        assert (info.st_uid, info.st_gid) == (uid, gid), path
    os.setegid(gid)
    os.seteuid(uid)
    try:
        assert [o.key for o in repo.list()] == [
            "backups/l1/backup.json",
            "wal/0000000100000000/000000010000000000000001.zst",
        ]
        assert repo.get_bytes("backups/l1/backup.json") == b"{}"
        repo.put_bytes("wal/0000000100000000/000000010000000000000002.zst", b"x")
        repo.delete("backups/l1/backup.json")
    finally:
        os.seteuid(0)
        os.setegid(0)
    mine = FileRepository(tmp_path / "root-owned")  # made by root: root's, as before
    mine.put_bytes("backups/l1/backup.json", b"{}")
    assert (tmp_path / "root-owned/backups/l1/backup.json").stat().st_uid == 0


def test_file_delete_prunes_empty_directories(tmp_path: Path) -> None:
    repo = FileRepository(tmp_path / "repo")
    repo.put_bytes("backups/l1/a", b"x")
    repo.put_bytes("backups/l1/b", b"x")
    repo.delete_many(["backups/l1/a", "backups/l1/b"])
    assert list((tmp_path / "repo").iterdir()) == []


def test_file_killed_writer_leaves_no_object(tmp_path: Path) -> None:
    """A process killed in the middle of open_write leaves a temp file at worst, never the key."""
    code = textwrap.dedent(
        f"""
        import os
        from powrops.storage import open_repository
        repo = open_repository({(tmp_path / "repo").as_uri()!r})
        with repo.open_write("backups/x/base.tar.zst") as writer:
            writer.write(b"x" * 1_000_000)
            writer.flush()
            os._exit(9)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], check=False)
    assert result.returncode == 9
    repo = FileRepository(tmp_path / "repo")
    assert not repo.exists("backups/x/base.tar.zst")
    assert list(repo.list()) == []
    assert any(".powrops-tmp." in p.name for p in (tmp_path / "repo").rglob("*"))


def test_storage_import_does_not_load_boto3(tmp_path: Path) -> None:
    """`powrops wal push` goes through here: no boto3, cryptography or settings on that path."""
    code = textwrap.dedent(
        f"""
        import sys
        import powrops.storage, powrops.storage.local
        repo = powrops.storage.open_repository({(tmp_path / "repo").as_uri()!r})
        repo.put_bytes("wal/1", b"x", if_absent=True)
        assert repo.get_bytes("wal/1") == b"x"
        heavy = ("boto3", "botocore", "cryptography", "sqlalchemy", "pandas")
        print(sorted(m for m in sys.modules
                     if m.split(".")[0] in heavy or m.startswith("powrops.config")))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


# --- s3:// -----------------------------------------------------------------------------------


def test_s3_multipart_and_prefix(s3_server: S3Server, s3_repo: S3Repository) -> None:
    data = os.urandom(20 * MiB)
    with s3_repo.open_write("backups/big") as writer:
        writer.write(data)
    client = s3_server.client()
    head = client.head_object(Bucket=s3_repo.bucket, Key="repo/prefix/backups/big")
    assert head["ContentLength"] == len(data)
    assert head["ETag"].strip('"').endswith("-4")  # four 5 MiB parts
    s3_repo.put_bytes("small", b"s")
    assert "-" not in client.head_object(Bucket=s3_repo.bucket, Key="repo/prefix/small")["ETag"]
    assert s3_repo.url == f"s3://{s3_repo.bucket}/repo/prefix"


@pytest.mark.parametrize(
    ("sse", "kms_key"), [("AES256", None), ("aws:kms", "arn:aws:kms:us-east-1:1:key/powrops")]
)
def test_s3_server_side_encryption_reaches_the_server(
    s3_server: S3Server, sse: str, kms_key: str | None
) -> None:
    bucket = new_bucket(s3_server)
    options = s3_options(s3_server.endpoint_url, server_side_encryption=sse, sse_kms_key_id=kms_key)
    repo = S3Repository(bucket, "", options)
    repo.put_bytes("single", b"x")
    with repo.open_write("multi") as writer:
        writer.write(b"y" * (6 * MiB))
    client = s3_server.client()
    for key in ("single", "multi"):
        head = client.head_object(Bucket=bucket, Key=key)
        assert head["ServerSideEncryption"] == sse
        assert head.get("SSEKMSKeyId") == kms_key


def test_s3_if_absent_is_a_conditional_put(
    s3_repo: S3Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even when the existence check misses the object, the PUT itself refuses (If-None-Match)."""
    s3_repo.put_bytes("wal/3", b"first")
    monkeypatch.setattr(s3_repo, "exists", lambda key: False)
    with pytest.raises(ObjectExists):
        s3_repo.put_bytes("wal/3", b"second", if_absent=True)
    assert s3_repo.get_bytes("wal/3") == b"first"


def test_s3_delete_many_batches(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3, "DELETE_BATCH", 3)
    repo = S3Repository(new_bucket(s3_server), "", s3_options(s3_server.endpoint_url))
    calls: list[int] = []
    repo.client.meta.events.register("before-call.s3.DeleteObjects", lambda **kw: calls.append(1))
    keys = [f"wal/{i}" for i in range(7)]
    for key in keys:
        repo.put_bytes(key, b"x")
    repo.delete_many(keys)
    assert len(calls) == 3
    assert list(repo.list()) == []


def test_gcs_kind(s3_server: S3Server) -> None:
    """kind=gcs: GCS's endpoint by default, its precondition header, single deletes."""
    assert S3Options(kind="gcs").endpoint == "https://storage.googleapis.com"
    repo = S3Repository(
        new_bucket(s3_server), "gcs", s3_options(s3_server.endpoint_url, kind="gcs")
    )
    sent: list[dict[str, Any]] = []
    repo.client.meta.events.register(
        "before-send.s3.*", lambda request, **kw: sent.append(dict(request.headers))
    )
    repo.put_bytes("wal/1", b"x", if_absent=True)
    assert sent[-1].get("x-goog-if-generation-match") == b"0"
    assert "If-None-Match" not in sent[-1]
    repo.put_bytes("wal/2", b"x")
    sent.clear()
    repo.delete_many(["wal/1", "wal/2"])
    assert len(sent) == 2  # one DeleteObject each: GCS has no DeleteObjects
    assert list(repo.list()) == []


def test_s3_through_settings_and_url_errors(s3_server: S3Server) -> None:
    bucket = new_bucket(s3_server)
    settings = config.Repository(
        kind="s3",
        url=f"s3://{bucket}/primary",
        endpoint_url=s3_server.endpoint_url,
        region=S3Server.REGION,
        access_key_id=S3Server.CREDENTIALS["access_key_id"],
        secret_access_key=S3Server.CREDENTIALS["secret_access_key"],
        server_side_encryption="AES256",
    )
    repo = open_repository(f"s3://{bucket}/primary", settings)
    repo.put_bytes("k", b"v")
    assert s3_server.client().get_object(Bucket=bucket, Key="primary/k")["Body"].read() == b"v"
    with pytest.raises(StorageError, match="does not match its kind 'file'"):
        open_repository(f"s3://{bucket}", config.Repository(kind="file"))
    with pytest.raises(StorageError) as caught:
        open_repository("s3://AKIDEXAMPLE:hunter2@bucket/x")
    assert "hunter2" not in str(caught.value) and "***@bucket" in str(caught.value)
    with pytest.raises(StorageError, match="unknown repository scheme 'ftp'"):
        open_repository("ftp://host/path")
    with pytest.raises(StorageError, match="not a repository URL"):
        open_repository("/var/backups")


def test_s3_missing_bucket_is_named(s3_server: S3Server) -> None:
    repo = S3Repository("powrops-no-such-bucket", "", s3_options(s3_server.endpoint_url))
    with pytest.raises(StorageError, match="bucket 'powrops-no-such-bucket' does not exist"):
        repo.stat("k")
    with pytest.raises(StorageError, match="bucket 'powrops-no-such-bucket' does not exist"):
        repo.put_bytes("k", b"x")


def test_s3_unreachable_endpoint_fails_fast() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    repo = S3Repository("powrops-backups", "", s3_options(endpoint))
    started = time.monotonic()
    with pytest.raises(StorageUnreachable) as caught:
        repo.put_bytes("wal/1", b"x")
    assert time.monotonic() - started < 15
    assert endpoint in str(caught.value) and "powrops-backups" in str(caught.value)


def test_s3_server_killed_during_multipart_upload() -> None:
    """The server dies between parts: a StorageError in seconds, and no object afterwards."""
    with S3Server.start() as server:
        bucket = new_bucket(server)
        repo = S3Repository(bucket, "", s3_options(server.endpoint_url))
        started = 0.0
        with (
            pytest.raises(StorageError) as caught,
            repo.open_write("backups/x/base.tar.zst") as writer,
        ):
            writer.write(os.urandom(10 * MiB))  # two parts stored
            server.stop()
            started = time.monotonic()
            writer.write(os.urandom(5 * MiB))  # the third part has nowhere to go
        elapsed = time.monotonic() - started
        assert isinstance(caught.value, StorageUnreachable)
        assert elapsed < 15, elapsed
        assert server.endpoint_url in str(caught.value) and bucket in str(caught.value)
        assert "could not be aborted" in "\n".join(getattr(caught.value, "__notes__", []))
        server.restart()  # moto keeps state in memory only: back, and empty
        server.create_bucket(bucket)
        assert not repo.exists("backups/x/base.tar.zst")


def test_s3_network_cut_during_multipart_upload(s3_server: S3Server) -> None:
    """The connection drops mid-upload while the server lives on: nothing appears there."""
    bucket = new_bucket(s3_server)
    relay = Relay(s3_server.port)
    repo = S3Repository(bucket, "", s3_options(relay.endpoint_url))
    started = 0.0
    with (
        pytest.raises(StorageUnreachable) as caught,
        repo.open_write("backups/x/base.tar.zst") as writer,
    ):
        writer.write(os.urandom(10 * MiB))
        relay.cut()
        started = time.monotonic()
        writer.write(os.urandom(10 * MiB))
    assert time.monotonic() - started < 15
    assert relay.endpoint_url in str(caught.value)
    direct = S3Repository(bucket, "", s3_options(s3_server.endpoint_url))
    assert not direct.exists("backups/x/base.tar.zst")
    assert list(direct.list()) == []
    # The abort could not get through either: the upload is pending, holding no object.
    uploads = s3_server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [u["Key"] for u in uploads] == ["backups/x/base.tar.zst"]


def test_s3_unfinished_upload_is_an_incomplete_backup_that_expiry_aborts(
    s3_server: S3Server,
) -> None:
    """A backup cut off the network left only a pending multipart upload (no object, billed
    storage): the catalog lists its run as incomplete, and deleting it aborts the upload."""
    from powrops.backup.catalog import Catalog

    bucket = new_bucket(s3_server)
    client = s3_server.client()
    for key in ("site/backups/20260101T000000F/base.tar.zst", "site/wal/x", "other/backups/y/z"):
        client.create_multipart_upload(Bucket=bucket, Key=key)
    repo = S3Repository(bucket, "site", s3_options(s3_server.endpoint_url))
    assert [o.key for o in repo.unfinished("backups/")] == ["backups/20260101T000000F/base.tar.zst"]
    catalog = Catalog(repo)
    assert [i.label for i in catalog.incomplete()] == ["20260101T000000F"]
    assert catalog.delete_backup("20260101T000000F") == 1
    assert catalog.incomplete() == []
    left = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert sorted(u["Key"] for u in left) == ["other/backups/y/z", "site/wal/x"]


# --- encryption ------------------------------------------------------------------------------


@pytest.fixture(params=["file", "s3"])
def encrypted(request: pytest.FixtureRequest, tmp_path: Path) -> EncryptedRepository:
    inner: Repository
    if request.param == "s3":
        inner = request.getfixturevalue("s3_repo")
    else:
        inner = FileRepository(tmp_path / "repo")
    return EncryptedRepository(inner, KEY, chunk_size=1024)


def test_ciphertext_hides_plaintext_and_key(encrypted: EncryptedRepository) -> None:
    secret = b"user 42 benched 140 kg " * 200
    encrypted.put_bytes("obj", secret)
    stored = encrypted.inner.get_bytes("obj")
    assert stored.startswith(b"POWRENC1")
    assert b"benched" not in stored
    assert KEY._secret not in stored
    assert KEY._secret.hex().encode() not in stored


@pytest.mark.parametrize("read", ["get_bytes", "open_read"])
def test_wrong_key_is_named(encrypted: EncryptedRepository, read: str) -> None:
    encrypted.put_bytes("obj", b"data")
    wrong = EncryptedRepository(encrypted.inner, OTHER_KEY)
    with pytest.raises(DecryptionError, match="different key") as caught:
        if read == "get_bytes":
            wrong.get_bytes("obj")
        else:
            with wrong.open_read("obj") as stream:
                stream.read()
    message = str(caught.value)
    assert KEY.fingerprint_hex in message and OTHER_KEY.fingerprint_hex in message


def _stored(encrypted: EncryptedRepository, data: bytes) -> bytes:
    encrypted.put_bytes("obj", data)
    return encrypted.inner.get_bytes("obj")


def _assert_rejected(encrypted: EncryptedRepository, blob: bytes, match: str) -> None:
    encrypted.inner.put_bytes("bad", blob)
    with pytest.raises(DecryptionError, match=match):
        encrypted.get_bytes("bad")
    with pytest.raises(DecryptionError, match=match), encrypted.open_read("bad") as stream:
        stream.read()


def test_tampered_byte_is_detected(encrypted: EncryptedRepository) -> None:
    blob = _stored(encrypted, os.urandom(3000))  # three 1024-byte chunks
    record = 1024 + RECORD_OVERHEAD
    for offset in (
        10,
        HEADER.size + 5,
        HEADER.size + 500,
        HEADER.size + record + 40,
        len(blob) - 1,
    ):
        flipped = bytearray(blob)
        flipped[offset] ^= 0x01
        _assert_rejected(encrypted, bytes(flipped), f"authentication.*{KEY.fingerprint_hex}")


def test_truncation_and_reordering_are_detected(encrypted: EncryptedRepository) -> None:
    blob = _stored(encrypted, os.urandom(3000))
    header, body = blob[: HEADER.size], blob[HEADER.size :]
    record = 1024 + RECORD_OVERHEAD
    records = [body[i : i + record] for i in range(0, len(body), record)]
    assert len(records) == 3
    _assert_rejected(encrypted, header + records[0] + records[1], "authentication")  # last gone
    _assert_rejected(encrypted, blob[:-10], "authentication")  # cut inside the last chunk
    _assert_rejected(encrypted, header + records[1] + records[0] + records[2], "authentication")
    _assert_rejected(encrypted, blob + b"x", "authentication")  # appended
    _assert_rejected(encrypted, header, "truncated")
    _assert_rejected(encrypted, blob[:20], "truncated")
    other = _stored(encrypted, os.urandom(3000))  # a chunk from another object
    _assert_rejected(encrypted, header + records[0] + other[HEADER.size + record :], "authentic")


def test_unencrypted_object_is_refused(encrypted: EncryptedRepository) -> None:
    encrypted.inner.put_bytes("plain", b"written before encryption was enabled")
    with pytest.raises(DecryptionError, match="not encrypted by powrops"):
        encrypted.get_bytes("plain")
    encrypted.inner.put_bytes("nothing", b"")
    with pytest.raises(DecryptionError, match="not encrypted by powrops"):
        encrypted.get_bytes("nothing")


def test_encrypted_repository_read_without_a_key_says_so(
    encrypted: EncryptedRepository, tmp_path: Path
) -> None:
    """Encryption switched off (or its section lost): the record and the WAL name the missing
    key, not a damaged backup or WAL that is not zstd."""
    from powrops.backup.catalog import Catalog
    from powrops.backup.wal.archive import fetch, push

    encrypted.put_bytes("backups/20260101T000000F/backup.json", b'{"label": "x"}')
    segment = tmp_path / "000000010000000000000001"
    segment.write_bytes(b"wal" * 1000)
    push(encrypted, segment)
    bare = Catalog(encrypted.inner)
    for read in (lambda: bare.get("20260101T000000F"), bare.scan,
                 lambda: fetch(encrypted.inner, segment.name, tmp_path / "x")):  # fmt: skip
        with pytest.raises(EncryptionKeyError, match="encrypted by powrops but read without a key"):
            read()


@settings(max_examples=40, deadline=None)
@given(
    data=st.binary(max_size=700),
    chunk=st.integers(min_value=1, max_value=100),
    sizes=st.lists(st.integers(min_value=1, max_value=150), min_size=1, max_size=5),
)
def test_streaming_and_whole_formats_agree(data: bytes, chunk: int, sizes: list[int]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        repo = EncryptedRepository(FileRepository(tmp), KEY, chunk_size=chunk)
        with repo.open_write("streamed") as writer:
            for piece in pieces(data, sizes):
                writer.write(piece)
        stored = repo.inner.get_bytes("streamed")
        records = max(1, -(-len(data) // chunk))
        assert len(stored) == HEADER.size + records * RECORD_OVERHEAD + len(data)
        assert decrypt_bytes(KEY, stored, "streamed") == data
        whole = encrypt_bytes(KEY, data, chunk)
        assert len(whole) == len(stored)
        repo.inner.put_bytes("whole", whole)
        with repo.open_read("whole") as reader:
            assert reader.read() == data


def test_key_sources(tmp_path: Path) -> None:
    secret = os.urandom(32)
    fingerprint = EncryptionKey(secret, "x").fingerprint_hex
    forms = {
        "raw": secret,
        "hex": secret.hex().encode() + b"\n",
        "b64": base64.b64encode(secret) + b"\n",
    }
    for name, content in forms.items():
        (tmp_path / name).write_bytes(content)
        enc = config.Encryption(enabled=True, key_file=str(tmp_path / name))
        assert load_key(enc, {}).fingerprint_hex == fingerprint
    for value in (secret.hex(), base64.b64encode(secret).decode()):
        enc = config.Encryption(enabled=True, key_env="POWROPS_TEST_KEY")
        assert load_key(enc, {"POWROPS_TEST_KEY": value}).fingerprint_hex == fingerprint
    with pytest.raises(EncryptionKeyError, match=r"POWROPS_TEST_KEY.*not set"):
        load_key(config.Encryption(enabled=True, key_env="POWROPS_TEST_KEY"), {})
    with pytest.raises(EncryptionKeyError, match=r"cannot read.*nope"):
        load_key(config.Encryption(enabled=True, key_file=str(tmp_path / "nope")), {})
    for bad in (b"short", b"g" * 64, base64.b64encode(os.urandom(16))):
        with pytest.raises(EncryptionKeyError, match="64 hex digits"):
            parse_key(bad, "test")
    with pytest.raises(EncryptionKeyError):
        parse_key(secret, "$VAR", allow_raw=False)
    assert secret.hex() not in repr(
        load_key(config.Encryption(enabled=True, key_file=str(tmp_path / "hex")), {})
    )


def test_open_repository_wraps_with_encryption(tmp_path: Path) -> None:
    enc = config.Encryption(enabled=True, key_env="POWROPS_KEY")
    env = {"POWROPS_KEY": KEY._secret.hex()}
    repo = open_repository((tmp_path / "repo").as_uri(), encryption=enc, environ=env)
    assert isinstance(repo, EncryptedRepository) and KEY.fingerprint_hex in repr(repo)
    repo.put_bytes("k", b"secret")
    assert FileRepository(tmp_path / "repo").get_bytes("k").startswith(b"POWRENC1")
    assert (
        open_repository((tmp_path / "repo").as_uri(), encryption=enc, environ=env).get_bytes("k")
        == b"secret"
    )
    unencrypted = open_repository((tmp_path / "repo").as_uri(), encryption=config.Encryption())
    assert isinstance(unencrypted, FileRepository)
