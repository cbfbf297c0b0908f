"""A real S3 API endpoint for tests: ``moto_server`` (moto's S3 API emulator) as a process.

moto stands in for AWS S3 and GCS's S3-compatible endpoint: powrops talks to it over HTTP on
127.0.0.1 through boto3, exactly as it talks to a cloud service. It keeps its state in memory
only, so a restarted server is empty.

    server = S3Server.start()          # free port, waits until it answers
    server.create_bucket("powrops-test")
    ... S3Options(endpoint_url=server.endpoint_url, **S3Server.CREDENTIALS) ...
    server.stop()                      # or use it as a context manager

:class:`Relay` is a TCP relay in front of a server that can be cut, to take the network away in
the middle of a request while the server (and its state) lives on.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class S3Server:
    """One ``moto_server`` process on 127.0.0.1."""

    CREDENTIALS: ClassVar[dict[str, str]] = {
        "access_key_id": "powrops-test",
        "secret_access_key": "powrops-test-secret",
    }
    REGION = "us-east-1"

    def __init__(self, port: int, host: str = HOST) -> None:
        self.host = host
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None
        self.log = Path(tempfile.mkstemp(prefix="moto-", suffix=".log")[1])
        self._client: Any = None
        atexit.register(self.stop)  # never outlive the test run

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @classmethod
    def start(cls, port: int | None = None, timeout: float = 30.0) -> S3Server:
        """A new server on ``port`` (a free one by default), answering when this returns."""
        server = cls(port or free_port())
        server._launch(timeout)
        return server

    def _launch(self, timeout: float) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto_server exited at start:\n{self.log_tail()}")
            if self.answers():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"moto_server did not answer within {timeout} s:\n{self.log_tail()}")

    def answers(self) -> bool:
        """Whether the server responds to an HTTP request."""
        try:
            with urllib.request.urlopen(self.endpoint_url + "/moto-api/", timeout=1):
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Kill the process (its state is lost) and wait for it."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.kill()
        process.wait(timeout=10)

    def restart(self, timeout: float = 30.0) -> None:
        """Stop and start again on the same port: the same endpoint, empty state."""
        self.stop()
        self._launch(timeout)

    def close(self) -> None:
        self.stop()
        with contextlib.suppress(OSError):
            self.log.unlink()

    def client(self) -> Any:
        """A plain boto3 client for looking behind powrops' back (created once)."""
        if self._client is None:
            self._client = self._make_client()
        return self._client

    def _make_client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.REGION,
            aws_access_key_id=self.CREDENTIALS["access_key_id"],
            aws_secret_access_key=self.CREDENTIALS["secret_access_key"],
        )

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def __enter__(self) -> S3Server:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _Listener:
    """A TCP endpoint on a free port of ``host``; each connection accepted is handed to
    ``_accepted`` (on the listening thread) until the listener is closed."""

    def __init__(self, host: str = HOST) -> None:
        self.host = host
        self.listener = socket.create_server((host, 0))
        self.port: int = self.listener.getsockname()[1]

    def _listen(self) -> None:
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self._accepted(client):
                return

    def _accepted(self, client: socket.socket) -> bool:
        """Take ``client``; False to stop listening."""
        raise NotImplementedError


class Relay(_Listener):
    """A TCP relay to ``target_port`` whose ``cut()`` drops every connection and the listener."""

    def __init__(self, target_port: int, host: str = HOST) -> None:
        super().__init__(host)
        self.target_port = target_port
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.is_cut = False
        self.bytes_up = 0
        self._listen()

    def _accepted(self, client: socket.socket) -> bool:
        try:
            upstream = socket.create_connection((self.host, self.target_port))
        except OSError:
            client.close()
            return True
        with self.lock:
            if self.is_cut:
                client.close()
                upstream.close()
                return False
            self.sockets += [client, upstream]
        threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
        threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()
        return True

    def _pump(self, source: socket.socket, sink: socket.socket, upward: bool) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
                if upward:
                    self.bytes_up += len(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def cut(self) -> None:
        """Refuse new connections and reset the open ones."""
        with self.lock:
            self.is_cut = True
            sockets, self.sockets = self.sockets, []
        self.listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


class Silent(_Listener):
    """An endpoint that accepts connections and never answers: a hung service, a proxy that
    swallows requests. ``accepted`` counts the connections (one per attempt of a client)."""

    def __init__(self, host: str = HOST) -> None:
        super().__init__(host)
        self.held: list[socket.socket] = []
        self._listen()

    @property
    def accepted(self) -> int:
        return len(self.held)

    def _accepted(self, client: socket.socket) -> bool:
        self.held.append(client)
        return True

    def close(self) -> None:
        self.listener.close()
        for sock in self.held:
            sock.close()
