"""How far Litestream has captured the WAL, read from files, without asking it to sync.

Litestream 0.5.17 bakes lost page updates into the replica when it is told to sync
(`litestream sync`, through its control socket) while it also syncs on its own: with
writes going on, restores then fail `integrity_check`, or pass it while rows are missing
from `notes` (README "Off-host replica"). So the replicator only watches: the WAL's own
header and frame headers say where its last frame ends at a given moment, and the header
of Litestream's newest local LTX file says where its capture ended (WAL salts, offset and
size). Every transaction that was in the WAL at that moment is captured once a capture
has reached that place, or once any capture follows one of that place's generation.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

WAL_HEADER_BYTES = 32
WAL_FRAME_HEADER_BYTES = 24
# LTX header (big-endian): magic, flags, page size, commit, min and max TXID, timestamp,
# pre-apply checksum, WAL offset, WAL size, WAL salts.
_LTX_HEADER = struct.Struct(">4sIIIQQqQqqII")
# More WAL restarts than this between a beat and a capture are not believed (a beat is
# at most a minute old; Litestream restarts the WAL at most a few times a second).
MAX_RESTARTS = 2**16


@dataclass(frozen=True)
class WalPosition:
    """A place in the WAL: its generation (the header's salts) and a byte offset."""

    salt1: int
    salt2: int
    end: int

    def same_generation(self, other: WalPosition) -> bool:
        return (self.salt1, self.salt2) == (other.salt1, other.salt2)

    def restarted_into(self, other: WalPosition) -> bool:
        """Whether OTHER is a later generation of this WAL: SQLite adds one to salt-1 at
        every restart. A foreign WAL's salts are random, so the bound keeps a chance match
        to about one in 65,000."""
        return 0 < (other.salt1 - self.salt1) % 2**32 < MAX_RESTARTS


@dataclass(frozen=True)
class Capture:
    """One local LTX file of Litestream's: its transaction and where in the WAL it ended."""

    txid: int
    position: WalPosition | None  # None for a snapshot that records no WAL place
    written_at: float  # epoch seconds, from the header: when Litestream wrote it


def wal_end(wal: Path, page_size: int) -> WalPosition | None:
    """Where the last commit of the WAL's current generation ends now; None without a
    WAL or a commit in it."""
    try:
        with wal.open("rb") as f:
            header = f.read(WAL_HEADER_BYTES)
            if len(header) < WAL_HEADER_BYTES:
                return None
            salt1, salt2 = struct.unpack(">II", header[16:24])
            offset = committed = WAL_HEADER_BYTES
            # Frames past the end of this generation are stale: they carry older salts.
            # Frames past the last commit are a transaction not committed (yet, or ever).
            while True:
                f.seek(offset)
                frame = f.read(WAL_FRAME_HEADER_BYTES)
                if len(frame) < WAL_FRAME_HEADER_BYTES:
                    break
                _page, commit, *salts = struct.unpack(">IIII", frame[:16])
                if tuple(salts) != (salt1, salt2):
                    break
                offset += WAL_FRAME_HEADER_BYTES + page_size
                if commit:
                    committed = offset
    except FileNotFoundError:
        return None
    if committed == WAL_HEADER_BYTES:
        return None
    return WalPosition(salt1, salt2, committed)


def captures(ltx_dir: Path) -> list[Capture]:
    """Litestream's local level-0 LTX files, oldest first: each one's TXID and WAL place."""
    found: list[Capture] = []
    for path in sorted(ltx_dir.glob("*.ltx")):  # named by TXID in fixed-width hex
        try:
            with path.open("rb") as f:
                header = f.read(_LTX_HEADER.size)
        except FileNotFoundError:  # compacted away meanwhile
            continue
        if len(header) < _LTX_HEADER.size or header[:4] != b"LTX1":
            continue  # still being written
        fields = _LTX_HEADER.unpack(header)
        txid, millis = fields[5], fields[6]
        offset, size, salt1, salt2 = fields[8:12]
        position = WalPosition(salt1, salt2, offset + size) if size > 0 else None
        found.append(Capture(txid, position, millis / 1000))
    return found


def first_reaching(at: WalPosition | None, found: list[Capture], since: float) -> Capture | None:
    """The oldest capture that holds every frame the WAL had at AT (None: no WAL then, so
    the newest capture does). SINCE is when this replicator started Litestream.

    A capture of AT's generation holds it once it ends at or past AT, and so does any
    capture after one of AT's generation: captures follow each other in TXID order, and
    while Litestream runs the WAL restarts only once it has captured it. A capture of a
    later generation that Litestream wrote in this run holds it too: a WAL that restarted
    before Litestream first captured it was wholly in the database file, which that first
    capture read. Other captures prove nothing: after a restore, Litestream fetches the
    replica's newest file, whose salts come from the lost server's WAL."""
    if at is None:
        return found[-1] if found else None
    seen = False
    for capture in found:
        position = capture.position
        if seen:
            return capture
        if position is None:
            continue
        if position.same_generation(at):
            if position.end >= at.end:
                return capture
            seen = True
        elif capture.written_at >= since and at.restarted_into(position):
            return capture
    return None


def page_size(database: Path) -> int:
    """The database's page size, from its header (1 means 65536)."""
    with database.open("rb") as f:
        header = f.read(18)
    (size,) = struct.unpack(">H", header[16:18])
    return 65536 if size == 1 else size
