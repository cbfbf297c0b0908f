"""``wal push`` / ``wal fetch`` (the archive and restore commands) against an S3 endpoint that
fails: the process runs as PostgreSQL starts it, ``python -m powrops wal ... --spec``, against
moto_server (moto's S3 API emulator) or a socket that accepts and never answers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from s3server import S3Server, Silent

SEGMENT = "000000010000000000000001"


@pytest.fixture
def silent() -> Iterator[Silent]:
    endpoint = Silent()
    yield endpoint
    endpoint.close()


def _spec(tmp_path: Path, endpoint_url: str, bucket: str = "powrops-wal") -> Path:
    """An archive spec (what ``<state>/archive.json`` holds) for an s3:// repository."""
    spec = tmp_path / "archive.json"
    repository = {"kind": "s3", "url": f"s3://{bucket}/site", "endpoint_url": endpoint_url,
                  "region": S3Server.REGION}  # fmt: skip
    spec.write_text(json.dumps({"url": repository["url"], "repository": repository}))
    return spec


def _env() -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("POWROPS", "AWS_"))}
    return {**base, "AWS_ACCESS_KEY_ID": S3Server.CREDENTIALS["access_key_id"],
            "AWS_SECRET_ACCESS_KEY": S3Server.CREDENTIALS["secret_access_key"]}  # fmt: skip


def _segment(tmp_path: Path) -> Path:
    path = tmp_path / SEGMENT
    path.write_bytes(os.urandom(64 * 1024))
    return path


def _start(*args: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "powrops", "wal", *args]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env())  # fmt: skip


def _wait_for(condition: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.parametrize("action", ["push", "fetch"])
def test_ctrl_c_while_the_endpoint_is_silent_is_one_line(
    tmp_path: Path, silent: Silent, action: str
) -> None:
    spec = _spec(tmp_path, silent.endpoint_url)
    where = [str(_segment(tmp_path))] if action == "push" else [SEGMENT, str(tmp_path / "x")]
    proc = _start(action, "--spec", str(spec), *where)
    _wait_for(lambda: silent.accepted > 0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == (3 if action == "push" else 128), err
    assert err.strip() == "powrops: interrupted by SIGINT", err
    assert "Traceback" not in err and out == ""


def test_push_to_a_silent_endpoint_gives_up_within_the_archive_silence(
    tmp_path: Path,
    silent: Silent,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """PostgreSQL retries the archive command, and waits for it at shutdown (pg_ctl for 60 s):
    one try within ``ARCHIVE_SILENCE`` (8 s), not four tries of 60 s each. The command's own
    entry runs here, with the silence shortened to 1.5 s: one try within it is what is checked."""
    from powrops.backup.wal import entry

    assert entry.ARCHIVE_SILENCE <= 10
    monkeypatch.setattr(entry, "ARCHIVE_SILENCE", 1.5)
    for name, value in _env().items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    argv = ["wal", "push", "--spec", str(_spec(tmp_path, silent.endpoint_url)),
            str(_segment(tmp_path))]  # fmt: skip
    start = time.monotonic()
    code = entry.run_fast(argv)
    took = time.monotonic() - start
    err = capsys.readouterr().err
    assert 1.4 <= took < 6, (took, err)
    assert code == 3 and silent.accepted == 1, (silent.accepted, err)
    assert err.count("\n") == 1 and silent.endpoint_url in err and "'powrops-wal'" in err, err
    assert "did not answer" in err and "Traceback" not in err, err


def test_failing_fast_reaches_the_bucket_under_encryption() -> None:
    from powrops.config import Encryption
    from powrops.config import Repository as RepositorySettings
    from powrops.storage.crypto import EncryptedRepository
    from powrops.storage.registry import open_repository
    from powrops.storage.s3 import S3Repository

    settings = RepositorySettings(kind="s3", url="s3://b/p", endpoint_url="http://127.0.0.1:9")
    repo = open_repository(settings.url or "", settings, Encryption(enabled=True, key_env="K"),
                           {"K": "ab" * 32})  # fmt: skip
    fast = repo.failing_fast(7.0)
    assert isinstance(fast, EncryptedRepository) and fast.key == repo.key  # type: ignore[attr-defined]
    assert isinstance(fast.inner, S3Repository) and fast.inner.url == "s3://b/p"
    assert (fast.inner.options.read_timeout, fast.inner.options.max_attempts) == (7.0, 0)
    assert fast.inner.options.endpoint_url == "http://127.0.0.1:9"
