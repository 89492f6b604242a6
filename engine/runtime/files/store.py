"""Where attachment contents live: blobs named by their SHA-256, stored once however many
attachments share them.

`FileStore` is the interface the engine writes and reads through; `DiskStore` keeps blobs
under a folder (`data/files` by default, relative to the working directory like the SQLite
database), at `ab/cd/abcdef…` for the digest `abcdef…`. Another store (object storage) can
implement the same protocol later.

A blob is written through a `BlobWriter`: chunks are hashed and counted as they come, into a
temporary file beside the blobs, and the write stops with `TooLarge` as soon as the size
limit is passed, so an upload is never held whole in memory nor written past its bound.
`commit` renames the temporary file into place (atomic on one file system); a blob that is
already there is kept, and the new copy dropped.

>>> import tempfile
>>> store = DiskStore(tempfile.mkdtemp())
>>> blob = store.put(b"hello")
>>> blob.sha256[:12], blob.size, store.open(blob.sha256).read()
('2cf24dba5fb0', 5, b'hello')
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

DEFAULT_FILES_DIR = "data/files"
CHUNK = 64 * 1024
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


class TooLarge(Exception):
    """The content passed the size limit it was written under."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"larger than {limit} bytes")
        self.limit = limit


@dataclass(frozen=True)
class Blob:
    """A stored content: its SHA-256 (hex) and size in bytes."""

    sha256: str
    size: int


class BlobWriter(Protocol):
    """One blob being written: `write` chunks, then `commit` (or `discard`)."""

    @property
    def size(self) -> int: ...

    def write(self, chunk: bytes) -> None: ...

    def reader(self) -> BinaryIO:
        """The bytes written so far, read from the start (to sniff them before commit)."""
        ...

    def finish(self) -> Blob:
        """The digest and size of what was written; the blob is stored only by `commit`."""
        ...

    def commit(self) -> Blob: ...

    def discard(self) -> None: ...


class FileStore(Protocol):
    """Blobs by SHA-256: what attachments are stored in."""

    def writer(self, limit: int | None = None) -> BlobWriter: ...

    def put(self, data: bytes | Iterable[bytes] | BinaryIO, limit: int | None = None
            ) -> Blob: ...

    def open(self, sha256: str) -> BinaryIO: ...

    def exists(self, sha256: str) -> bool: ...

    def delete(self, sha256: str) -> None: ...


def _chunks(data: bytes | Iterable[bytes] | BinaryIO) -> Iterable[bytes]:
    if isinstance(data, bytes):
        yield data
    elif hasattr(data, "read"):
        while chunk := data.read(CHUNK):
            yield chunk
    else:
        yield from data


def check_digest(sha256: str) -> str:
    """`sha256` when it is a SHA-256 in lower-case hex; ValueError otherwise (a digest names
    a path: it must never hold a separator or `..`)."""
    if not _DIGEST.match(sha256):
        raise ValueError(f"not a SHA-256 digest: {sha256[:80]!r}")
    return sha256


class DiskStore:
    """Blobs in a folder: `root/ab/cd/<digest>`. The folder is made on the first write."""

    def __init__(self, root: str | os.PathLike[str] = DEFAULT_FILES_DIR) -> None:
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        digest = check_digest(sha256)
        return self.root / digest[:2] / digest[2:4] / digest

    def writer(self, limit: int | None = None) -> DiskWriter:
        return DiskWriter(self, limit)

    def put(self, data: bytes | Iterable[bytes] | BinaryIO, limit: int | None = None
            ) -> Blob:
        """Store `data` (bytes, chunks or a binary file); TooLarge past `limit` bytes."""
        writer = self.writer(limit)
        try:
            for chunk in _chunks(data):
                writer.write(chunk)
            return writer.commit()
        finally:
            writer.discard()

    def open(self, sha256: str) -> BinaryIO:
        """The blob's bytes; FileNotFoundError when it is not stored."""
        return self.path(sha256).open("rb")

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def delete(self, sha256: str) -> None:
        """Remove the blob; nothing happens when it is not there."""
        with contextlib.suppress(FileNotFoundError):
            self.path(sha256).unlink()


class DiskWriter:
    """A blob being written to a temporary file under the store's root."""

    def __init__(self, store: DiskStore, limit: int | None) -> None:
        self.store = store
        self.limit = limit
        self._hash = hashlib.sha256()
        self._size = 0
        incoming = store.root / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        self._temp: Path | None = incoming / f"{secrets.token_hex(16)}.part"
        self._file: BinaryIO | None = self._temp.open("xb")

    @property
    def size(self) -> int:
        return self._size

    def write(self, chunk: bytes) -> None:
        if self._file is None:
            raise ValueError("the blob is already committed or discarded")
        self._size += len(chunk)
        if self.limit is not None and self._size > self.limit:
            self.discard()
            raise TooLarge(self.limit)
        self._hash.update(chunk)
        self._file.write(chunk)

    def reader(self) -> BinaryIO:
        if self._temp is None:
            raise ValueError("the blob is already committed or discarded")
        if self._file is not None:
            self._file.flush()
        return self._temp.open("rb")

    def finish(self) -> Blob:
        """The blob written: no more chunks come. It is not in the store until `commit`."""
        if self._temp is None:
            raise ValueError("the blob is already committed or discarded")
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
        return Blob(self._hash.hexdigest(), self._size)

    def commit(self) -> Blob:
        """Move the blob into the store (atomically); the same content already stored is
        kept as it is."""
        blob = self.finish()
        assert self._temp is not None
        target = self.store.path(blob.sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_file():
            self._temp.unlink()
        else:
            os.replace(self._temp, target)
        self._temp = None
        return blob

    def discard(self) -> None:
        """Drop what was written (nothing once committed)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._temp is not None:
            with contextlib.suppress(FileNotFoundError):
                self._temp.unlink()
            self._temp = None
