"""The decompressed bytes of a source file, in chunks, keeping everything readable before a problem.

Usage::

    chunks = DecompressedChunks(path)
    for chunk in chunks:        # bytes, at most a few MB each
        ...
    if chunks.problem:          # None when the file was read to its proper end
        ...                     # e.g. "truncated gzip: ..."; every byte before it was yielded

gzip is recognised by its magic bytes (not the name). Unlike ``gzip.open``, which drops the output of the
read that meets a broken or missing end (so a file missing only its 4-byte trailer loses its last records),
this yields every byte that decompresses before the problem, then stops and says what went wrong:
the compressed data ends early (truncated download, missing trailer), it is corrupt (the bytes up to the
corrupt block are kept), a CRC / length check fails, or unexpected bytes follow the gzip data. Concatenated
gzip members and zero padding after the last member are read as ``gzip`` reads them. Memory is bounded by
the chunk sizes.
"""

from __future__ import annotations

import zlib
from collections.abc import Generator, Iterator
from pathlib import Path

GZIP_MAGIC = b"\x1f\x8b"
READ_BYTES = 256 * 1024  # compressed bytes fed to zlib at a time (about 1.5 MB of MEDLINE XML out)
PLAIN_READ_BYTES = 1024 * 1024
_SALVAGE_PIECE = 512  # on a corrupt block, re-feed the chunk in pieces this small to keep what came before


class DecompressedChunks:
    """Iterate over the decompressed bytes of ``path``; ``problem`` says why the end was not reached.

    Opening the file happens on iteration: an ``OSError`` there (missing, permission, symlink loop) propagates;
    a read error later ends the iteration with ``problem`` set. ``compressed`` tells whether it is gzip,
    ``bytes_out`` how many decompressed bytes were yielded.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.problem: str | None = None
        self.compressed: bool | None = None
        self.bytes_out = 0

    def __iter__(self) -> Iterator[bytes]:
        fh = open(self.path, "rb")  # noqa: SIM115 - closed below, also when the consumer stops early
        try:
            try:
                head = fh.read(2)
            except OSError as exc:
                self.problem = f"read error: {exc}"
                return
            if not head:
                self.problem = "empty file"
                return
            self.compressed = head == GZIP_MAGIC
            chunks = self._gzip(fh, head) if self.compressed else self._plain(fh, head)
            for chunk in chunks:
                if chunk:
                    self.bytes_out += len(chunk)
                    yield chunk
        finally:
            fh.close()

    def _plain(self, fh, head: bytes) -> Iterator[bytes]:  # noqa: ANN001 - a binary file object
        yield head
        while True:
            try:
                chunk = fh.read(PLAIN_READ_BYTES)
            except OSError as exc:
                self.problem = f"read error after {self.bytes_out:,} bytes: {exc}"
                return
            if not chunk:
                return
            yield chunk

    def _gzip(self, fh, head: bytes) -> Iterator[bytes]:  # noqa: ANN001 - a binary file object
        inflate = zlib.decompressobj(wbits=31)  # gzip header and trailer (CRC-32, length) checked by zlib
        pending = head  # compressed bytes not yet fed
        offset = 0  # compressed bytes fed before ``pending``
        at_eof = False
        while True:
            if not pending and not at_eof:
                try:
                    pending = fh.read(READ_BYTES)
                except OSError as exc:
                    self.problem = f"read error after {offset:,} compressed bytes: {exc}"
                    return
                at_eof = not pending
            if not pending:
                break
            data, pending = pending, b""
            before = inflate.copy()
            try:
                out = inflate.decompress(data)
            except zlib.error as exc:
                at = yield from self._salvage(before, data)
                self.problem = f"corrupt gzip data near compressed byte {offset + at:,}: {exc}"
                return
            yield out
            offset += len(data)
            if inflate.eof:  # end of one gzip member: more members, zero padding or stray bytes may follow
                rest = inflate.unused_data
                offset -= len(rest)
                while True:
                    stripped = rest.lstrip(b"\x00")
                    offset += len(rest) - len(stripped)
                    rest = stripped
                    if rest or at_eof:
                        break
                    rest = self._read_quietly(fh)
                    at_eof = not rest
                if not rest:
                    return  # a proper end
                if not GZIP_MAGIC.startswith(rest[:2]):
                    self.problem = f"unexpected bytes after the end of the gzip data (compressed byte {offset:,})"
                    return
                inflate = zlib.decompressobj(wbits=31)
                pending = rest
        try:
            yield inflate.flush()
        except zlib.error:  # pragma: no cover - flush of an unfinished stream only returns what it has
            pass
        if not inflate.eof:
            self.problem = (f"truncated gzip: the compressed data ends after {offset:,} bytes, before the gzip "
                            "end marker (an incomplete download?)")

    @staticmethod
    def _read_quietly(fh) -> bytes:  # noqa: ANN001
        try:
            return fh.read(READ_BYTES)
        except OSError:
            return b""

    @staticmethod
    def _salvage(inflate, data: bytes) -> Generator[bytes, None, int]:  # noqa: ANN001 - a zlib decompress object
        """Yield the output of ``data`` up to the piece where decompression fails (what a corrupt block leaves);
        return that piece's offset in ``data``."""
        for start in range(0, len(data), _SALVAGE_PIECE):
            before = inflate.copy()
            try:
                out = inflate.decompress(data[start:start + _SALVAGE_PIECE])
            except zlib.error:
                for at in range(start, min(start + _SALVAGE_PIECE, len(data))):  # then byte by byte
                    try:
                        out = before.decompress(data[at:at + 1])
                    except zlib.error:
                        return at
                    yield out
                return start  # pragma: no cover - the piece failed as a whole, so one of its bytes fails
            yield out
        return len(data)
