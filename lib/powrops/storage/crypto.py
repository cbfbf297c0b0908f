"""Client-side encryption of everything a repository stores: AES-256-GCM, streamed in chunks.

When ``[backup.encryption] enabled = true``, :func:`~powrops.storage.open_repository` wraps the
repository in :class:`EncryptedRepository`: objects are encrypted before they leave the process
and decrypted (and authenticated) when read back. The storage service only ever sees ciphertext.

The key is 32 bytes, read from ``key_file`` (32 raw bytes, 64 hex digits, or base64 of 32 bytes)
or from the environment variable named by ``key_env`` (hex or base64). ``key_file`` wins when
both are set. The key is never written anywhere; objects carry only its *fingerprint*, the first
8 bytes of HMAC-SHA256(key, "powrops-key-id"), so a wrong key is reported as such before any
decryption is attempted. Generate a key with ``python -c "import secrets;
print(secrets.token_hex(32))"``. Losing the key means losing the backups.

Object format (version 1)::

    header   b"POWRENC1" | file id (16 random bytes) | key fingerprint (8) | chunk size (u32 BE)
    records  nonce (12 random bytes) | AES-GCM ciphertext of a chunk | 16-byte tag, repeated

Every chunk holds ``chunk size`` plaintext bytes (1 MiB) except the last, which holds 0 to
``chunk size`` bytes; an empty object is one empty final chunk. Each chunk is encrypted with a
key derived per object (HKDF-SHA256 of the key, salted with the file id) and authenticated
together with the whole header, its index and a final-chunk flag, so a modified byte, a chunk
moved, dropped or copied from another object, a cut-off tail and appended bytes all fail
authentication with :class:`~powrops.errors.DecryptionError`.

``stat()`` and ``list()`` of an encrypted repository report the *stored* sizes: 36 header bytes
plus 28 bytes per started MiB (at least one) more than the plaintext.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import io
import os
import secrets
import struct
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from powrops.errors import DecryptionError, EncryptionKeyError
from powrops.storage.base import ENCRYPTED_MAGIC, ObjectInfo, Repository, read_up_to

if TYPE_CHECKING:
    from powrops.config import Encryption

MAGIC = ENCRYPTED_MAGIC
HEADER = struct.Struct(">8s16s8sI")  # magic, file id, key fingerprint, chunk size
FILE_ID_SIZE = 16
NONCE_SIZE = 12
TAG_SIZE = 16
RECORD_OVERHEAD = NONCE_SIZE + TAG_SIZE
DEFAULT_CHUNK_SIZE = 1024 * 1024
MAX_CHUNK_SIZE = 64 * 1024 * 1024
KEY_SIZE = 32
_KEY_ID_LABEL = b"powrops-key-id"
_KDF_INFO = b"powrops-encryption-v1 aes-256-gcm"


class EncryptionKey:
    """A 32-byte key and where it came from; its bytes never appear in ``repr`` or messages."""

    def __init__(self, secret: bytes, source: str) -> None:
        if len(secret) != KEY_SIZE:
            raise EncryptionKeyError(f"the encryption key from {source} is not {KEY_SIZE} bytes")
        self._secret = secret
        self.source = source
        self.fingerprint = hmac.new(secret, _KEY_ID_LABEL, hashlib.sha256).digest()[:8]

    @property
    def fingerprint_hex(self) -> str:
        return self.fingerprint.hex()

    def cipher_for(self, file_id: bytes) -> AESGCM:
        """The AES-256-GCM cipher of one object, keyed by HKDF(key, salt=file id)."""
        derived = HKDF(
            algorithm=hashes.SHA256(), length=KEY_SIZE, salt=file_id, info=_KDF_INFO
        ).derive(self._secret)
        return AESGCM(derived)

    def __repr__(self) -> str:
        return f"EncryptionKey(fingerprint={self.fingerprint_hex}, source={self.source!r})"


def parse_key(raw: bytes, source: str, *, allow_raw: bool = True) -> EncryptionKey:
    """A key from 32 raw bytes (files only), 64 hex digits or base64 of 32 bytes."""
    if allow_raw and len(raw) == KEY_SIZE:
        return EncryptionKey(raw, source)
    try:
        text = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        text = ""
    secret: bytes | None = None
    if len(text) == 2 * KEY_SIZE:
        try:
            secret = bytes.fromhex(text)
        except ValueError:
            secret = None
    if secret is None and text:
        try:
            secret = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            secret = None
    if secret is None or len(secret) != KEY_SIZE:
        forms = "32 raw bytes, " if allow_raw else ""
        raise EncryptionKeyError(
            f"the encryption key in {source} is not {forms}64 hex digits or base64 of 32 bytes"
        )
    return EncryptionKey(secret, source)


def load_key(encryption: Encryption, environ: Mapping[str, str] | None = None) -> EncryptionKey:
    """The key that ``[backup.encryption]`` points at (``key_file`` first, else ``key_env``)."""
    env = os.environ if environ is None else environ
    if encryption.key_file:
        path = os.path.expanduser(encryption.key_file)
        try:
            with open(path, "rb") as handle:
                raw = handle.read(4096)
        except OSError as exc:
            raise EncryptionKeyError(
                f"cannot read the encryption key file {path}: {exc.strerror or exc}"
            ) from None
        return parse_key(raw, f"key file {path}")
    if encryption.key_env:
        value = env.get(encryption.key_env)
        if not value:
            raise EncryptionKeyError(
                f"environment variable {encryption.key_env} (encryption.key_env) is not set"
            )
        return parse_key(value.encode(), f"${encryption.key_env}", allow_raw=False)
    raise EncryptionKeyError("encryption is enabled but neither key_file nor key_env is set")


def new_key_hex() -> str:
    """A fresh random key as 64 hex digits (what a key file may contain)."""
    return secrets.token_hex(KEY_SIZE)


# --- the format ------------------------------------------------------------------------------


def _aad(header: bytes, index: int, final: bool) -> bytes:
    return header + struct.pack(">QB", index, 1 if final else 0)


class _Sealer:
    """Encrypts one object's chunks in order."""

    def __init__(self, key: EncryptionKey, chunk_size: int) -> None:
        file_id = secrets.token_bytes(FILE_ID_SIZE)
        self.header = HEADER.pack(MAGIC, file_id, key.fingerprint, chunk_size)
        self.cipher = key.cipher_for(file_id)
        self.index = 0

    def seal(self, chunk: bytes | bytearray | memoryview, final: bool) -> bytes:
        nonce = secrets.token_bytes(NONCE_SIZE)
        sealed = self.cipher.encrypt(nonce, bytes(chunk), _aad(self.header, self.index, final))
        self.index += 1
        return nonce + sealed


class _Opener:
    """Checks one object's header and decrypts its chunks in order."""

    def __init__(self, key: EncryptionKey, header: bytes, where: str) -> None:
        self.key = key
        self.where = where
        if len(header) < len(MAGIC) or not header.startswith(MAGIC):
            raise DecryptionError(
                f"{where} is not encrypted by powrops (no {MAGIC.decode()} header); "
                "it was written without encryption or by something else",
                where=where,
            )
        if len(header) < HEADER.size:
            raise DecryptionError(f"{where} is truncated: its header is incomplete", where=where)
        _, file_id, fingerprint, chunk_size = HEADER.unpack(header)
        if not hmac.compare_digest(fingerprint, key.fingerprint):
            raise DecryptionError(
                f"{where} was encrypted with a different key (fingerprint {fingerprint.hex()}, "
                f"this key {key.fingerprint_hex} from {key.source})",
                where=where,
                object_fingerprint=fingerprint.hex(),
                key_fingerprint=key.fingerprint_hex,
            )
        if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
            raise DecryptionError(f"{where} has a corrupt header (chunk size {chunk_size})")
        self.header = header
        self.chunk_size = chunk_size
        self.record_size = chunk_size + RECORD_OVERHEAD
        self.cipher = key.cipher_for(file_id)
        self.index = 0

    def open(self, record: bytes, final: bool) -> bytes:
        if len(record) < RECORD_OVERHEAD:
            raise DecryptionError(
                f"{self.where} is truncated (chunk {self.index} is incomplete)", where=self.where
            )
        nonce, sealed = record[:NONCE_SIZE], record[NONCE_SIZE:]
        try:
            plain = self.cipher.decrypt(nonce, sealed, _aad(self.header, self.index, final))
        except InvalidTag:
            raise DecryptionError(
                f"{self.where} failed authentication at chunk {self.index} with key "
                f"{self.key.fingerprint_hex}: it was modified, truncated or reassembled",
                where=self.where,
                chunk=self.index,
            ) from None
        self.index += 1
        return plain


def encrypt_bytes(key: EncryptionKey, data: bytes, chunk_size: int = DEFAULT_CHUNK_SIZE) -> bytes:
    """The whole encrypted object for ``data``."""
    sealer = _Sealer(key, chunk_size)
    out = [sealer.header]
    view = memoryview(data)
    starts = range(0, len(view), chunk_size) if view else range(1)
    for start in starts:
        out.append(sealer.seal(view[start : start + chunk_size], start + chunk_size >= len(view)))
    return b"".join(out)


def decrypt_bytes(key: EncryptionKey, blob: bytes, where: str) -> bytes:
    """The plaintext of a whole encrypted object; DecryptionError when it does not authenticate."""
    with io.BufferedReader(_DecryptingSource(io.BytesIO(blob), key, where)) as reader:
        return reader.read()


class _EncryptingSink(io.RawIOBase):
    """Writes the encrypted form of what is written to it into another stream."""

    def __init__(self, inner: BinaryIO, key: EncryptionKey, chunk_size: int) -> None:
        super().__init__()
        self.inner = inner
        self.chunk_size = chunk_size
        self.sealer = _Sealer(key, chunk_size)
        self.buffer = bytearray()
        self.abandoned = False
        inner.write(self.sealer.header)

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        size = len(view)
        if self.abandoned:
            return size
        while view:
            if len(self.buffer) == self.chunk_size:  # full, and more follows: not the last
                self.inner.write(self.sealer.seal(self.buffer, final=False))
                self.buffer = bytearray()
            room = self.chunk_size - len(self.buffer)
            self.buffer += view[:room]
            view = view[room:]
        return size

    def finish(self) -> None:
        self.inner.write(self.sealer.seal(self.buffer, final=True))
        self.buffer = bytearray()


class _DecryptingSource(io.RawIOBase):
    """Reads an encrypted stream and yields authenticated plaintext, chunk by chunk."""

    def __init__(self, inner: BinaryIO, key: EncryptionKey, where: str) -> None:
        super().__init__()
        self.inner = inner
        self.opener = _Opener(key, read_up_to(self.inner, HEADER.size), where)
        # One record plus one byte tells whether the record is the last one.
        self.pending = read_up_to(self.inner, self.opener.record_size + 1)
        self.plain = b""
        self.offset = 0
        self.done = False

    def _next_chunk(self) -> None:
        size = self.opener.record_size
        if len(self.pending) > size:
            record, rest = self.pending[:size], self.pending[size:]
            self.plain = self.opener.open(record, final=False)
            self.pending = rest + read_up_to(self.inner, size + 1 - len(rest))
        else:
            self.plain = self.opener.open(self.pending, final=True)
            self.pending = b""
            self.done = True
        self.offset = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while self.offset >= len(self.plain):
            if self.done:
                return 0
            self._next_chunk()
        count = min(len(view), len(self.plain) - self.offset)
        view[:count] = self.plain[self.offset : self.offset + count]
        self.offset += count
        return count


class EncryptedRepository(Repository):
    """Another repository, with every object encrypted on write and authenticated on read."""

    def __init__(
        self, inner: Repository, key: EncryptionKey, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> None:
        if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
            raise EncryptionKeyError(f"chunk size {chunk_size} is outside 1..{MAX_CHUNK_SIZE}")
        self.inner = inner
        self.key = key
        self.chunk_size = chunk_size
        self.url = inner.url

    def describe(self, key: str) -> str:
        return self.inner.describe(key)

    def failing_fast(self, silence: float) -> Repository:
        return EncryptedRepository(self.inner.failing_fast(silence), self.key, self.chunk_size)

    def unfinished(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.inner.unfinished(prefix)

    def abort_unfinished(self, prefix: str) -> int:
        return self.inner.abort_unfinished(prefix)

    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> ObjectInfo:
        blob = encrypt_bytes(self.key, data, self.chunk_size)
        return self.inner.put_bytes(key, blob, if_absent=if_absent)

    @contextmanager
    def open_write(self, key: str) -> Iterator[BinaryIO]:
        with self.inner.open_write(key) as stream:
            sink = _EncryptingSink(stream, self.key, self.chunk_size)
            writer = io.BufferedWriter(sink, buffer_size=64 * 1024)
            try:
                yield writer
                if not writer.closed:
                    writer.flush()
                sink.finish()
            finally:
                sink.abandoned = True  # whatever is still buffered must not reach the stream
                writer.close()

    def get_bytes(self, key: str) -> bytes:
        return decrypt_bytes(self.key, self.inner.get_bytes(key), self.describe(key))

    @contextmanager
    def open_read(self, key: str) -> Iterator[BinaryIO]:
        with self.inner.open_read(key) as stream:
            source = _DecryptingSource(stream, self.key, self.describe(key))
            with io.BufferedReader(source, buffer_size=DEFAULT_CHUNK_SIZE) as reader:
                yield reader

    def stat(self, key: str) -> ObjectInfo | None:
        return self.inner.stat(key)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def delete_many(self, keys: Iterable[str]) -> None:
        self.inner.delete_many(keys)

    def __repr__(self) -> str:
        return f"EncryptedRepository({self.inner!r}, key {self.key.fingerprint_hex})"
