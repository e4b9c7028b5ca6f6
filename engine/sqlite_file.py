"""Has a SQLite store's WAL lost committed writes? Read from SQLite's own file formats, before SQLite opens it.

SQLite recovers a WAL database by replaying the -wal file up to its last complete commit. If that file was
cut short (a careless copy, a restore, a disk that lost its tail), recovery replays less and the store
opens without a word, short of rows it had committed. SQLite cannot tell; its wal-index (-shm) can: the
index's header records how many frames were committed (`mxFrame`) and how many of those are already in
the main file (`nBackfill`). A -wal shorter than those committed frames, or one whose salts are not the
index's, means writes are gone. Formats: https://www.sqlite.org/walformat.html (§1.1 the WAL header,
§2.1 the wal-index header, native byte order).

Only meaningful before this process opens the database: SQLite rebuilds the index when it recovers.
"""

from __future__ import annotations

import sys
from pathlib import Path

WAL_HEADER = 32
FRAME_HEADER = 24
INDEX_HEADER = 48  # two copies, then the checkpoint info
INDEX_READ = 2 * INDEX_HEADER + 4  # ... of which only nBackfill is read
INDEX_VERSION = 3007000


def _u32(b: bytes, at: int) -> int:
    return int.from_bytes(b[at:at + 4], sys.byteorder)


def _index(shm: Path) -> bytes | None:
    try:
        with open(shm, "rb") as f:  # never a file this process holds SQLite locks on (engine.store)
            return f.read(INDEX_READ)
    except FileNotFoundError:
        return None


def _initialised(index: bytes | None) -> bool:
    """A whole header of the wal-index format SQLite writes, marked initialised (isInit)."""
    return index is not None and len(index) >= INDEX_READ and _u32(index, 0) == INDEX_VERSION and index[12] == 1


def _wal(wal: Path) -> tuple[int, bytes]:
    try:
        with open(wal, "rb") as f:
            return wal.stat().st_size, f.read(WAL_HEADER)
    except FileNotFoundError:
        return 0, b""


def lost_writes(db: Path, tries: int = 5) -> str | None:
    """Why `db`'s committed writes would be silently dropped if SQLite opened it now, or None if not.

    None also when there is nothing to compare: no -shm, an index being written or never initialised.
    A live writer may append and checkpoint meanwhile: the index is read before and after the -wal, and
    only a read that saw the same index twice counts.
    """
    wal, shm = Path(f"{db}-wal"), Path(f"{db}-shm")
    for _ in range(tries):
        index = _index(shm)
        if index is None or not _initialised(index) or index[:INDEX_HEADER] != index[INDEX_HEADER:2 * INDEX_HEADER]:
            return None  # no index, or a write in progress: SQLite rebuilds it from the -wal
        first = index[:INDEX_HEADER]
        size, header = _wal(wal)
        if _index(shm) == index:
            break
    else:
        return None
    size_code = int.from_bytes(first[14:16], sys.byteorder)
    page = 65536 if size_code == 1 else size_code
    committed, backfilled = _u32(first, 16), _u32(index, 2 * INDEX_HEADER)
    if committed <= backfilled:
        return None  # every committed frame is in the main file already
    frame = FRAME_HEADER + page
    needed = WAL_HEADER + committed * frame
    missing = committed - max(backfilled, (size - WAL_HEADER) // frame if size >= WAL_HEADER else 0)
    if size == 0:
        what = f"{wal.name} is missing"
    elif len(header) == WAL_HEADER and header[16:24] != first[32:40]:
        what = f"{wal.name} is not the log {shm.name} describes (another store's, or an older copy)"
        missing = committed - backfilled
    elif size < needed:
        what = f"{wal.name} is cut short ({size:,} of at least {needed:,} bytes)"
    else:
        return None
    return (f"{what}: committed writes not yet in {db.name} (at least {missing} page(s)) would be silently dropped; "
            f"put the whole {wal.name} back, or to accept the loss move {shm.name} away and open again")


def holds_unmerged_writes(db: Path) -> bool:
    """Does `db`'s -wal hold committed writes not yet copied into the main file? A reader that cannot
    write (SQLite's `immutable` open, for read-only media) sees the main file alone and would miss them.
    Without an index to say, any -wal with frames counts."""
    wal, shm = Path(f"{db}-wal"), Path(f"{db}-shm")
    size, _ = _wal(wal)
    if size <= WAL_HEADER:
        return False
    index = _index(shm)
    if index is None or not _initialised(index):
        return True
    return _u32(index, 16) > _u32(index, 2 * INDEX_HEADER)
