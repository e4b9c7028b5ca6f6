"""A SQLite store file, below SQLAlchemy: its path in a store URL, the checks made before SQLite opens it,
and the settings every connection to it gets.

Checks: a file pgg must not touch (not SQLite, another program's, newer, damaged) is refused with one line
and left exactly as found; so is one whose write-ahead log has lost committed writes, or a read-only one
whose log holds writes a read-only open cannot see. Settings: WAL, a busy timeout, `synchronous=NORMAL`,
and `BEGIN IMMEDIATE` for every write transaction (a deferred transaction that upgrades to a write fails
at once with "database is locked", whatever the busy timeout). engine.store opens stores through it.

Has a store's WAL lost committed writes? SQLite recovers a WAL database by replaying the -wal file up to its
last complete commit. If that file was cut short (a careless copy, a restore, a disk that lost its tail),
recovery replays less and the store opens without a word, short of rows it had committed. SQLite cannot
tell; its wal-index (-shm) can: the index's header records how many frames were committed (`mxFrame`) and
how many of those are already in the main file (`nBackfill`). A -wal shorter than those committed frames,
or one whose salts are not the index's, means writes are gone. Formats: https://www.sqlite.org/walformat.html
(§1.1 the WAL header, §2.1 the wal-index header, native byte order). Only meaningful before this process
opens the database: SQLite rebuilds the index when it recovers.

sqlalchemy + stdlib only: the CLI and the app import this module.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from engine.errors import ConfigError, StoreError
from engine.schema import APP_ID


def path_of(url: str) -> Path | None:
    """The SQLite file a store URL names; None for another backend or an in-memory database."""
    u = sa.engine.make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


def writable(path: Path) -> bool:
    """The file and its folder can be written (SQLite in WAL mode needs both)."""
    return os.access(path, os.W_OK) and os.access(path.resolve().parent, os.W_OK)


# ---------------------------------------------------------------------------------------------------
# before SQLite opens the file

# One descriptor per store file, never closed. Closing *any* descriptor of a file drops every POSIX lock
# this process holds on it, SQLite's included (the POSIX advisory-lock pitfall): a second Store.open in a
# process that reads the header with open()/close() made another process believe it was the file's last
# user, checkpoint and delete the WAL, and this process's later commits went unseen, then lost.
_HEADER_FDS: dict[tuple[int, int], int] = {}
_CONNECTED: set[tuple[int, int]] = set()  # store files this process has opened through SQLite


def _file_key(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _read_header(path: Path) -> bytes:
    key = _file_key(path)
    if key not in _HEADER_FDS:
        _HEADER_FDS[key] = os.open(path, os.O_RDONLY)
    return os.pread(_HEADER_FDS[key], 16, 0)


def opened(path: Path) -> None:
    """Record that this process holds SQLite connections to the file (inspect reads its -wal no more)."""
    _CONNECTED.add(_file_key(path))


def inspect(path: Path) -> int | None:
    """Look at a SQLite file without changing it: its pgg schema version, or None if it is new/empty.

    Raises StoreError for anything pgg must not touch.
    """
    if not path.exists() or path.stat().st_size == 0:
        return None
    if path.is_dir():
        raise StoreError(f"{path} is a directory, not a store file")
    # Read the -wal/-shm only while this process has no SQLite connection to the file: closing our
    # descriptor of the -shm would drop that connection's locks on it (above), and it has recovered the log.
    first_open = _file_key(path) not in _CONNECTED
    header = _read_header(path)
    if header != b"SQLite format 3\x00":
        raise StoreError(f"{path} is not a SQLite database; refusing to use it as a store")
    if first_open and (loss := lost_writes(path)):
        raise StoreError(f"store {path}: {loss}")
    if first_open and not writable(path) and holds_unmerged_writes(path):
        raise StoreError(
            f"store {path} is read-only and its {path.name}-wal holds writes not yet in {path.name}, "
            f"which a read-only open cannot see; copy the three files somewhere writable and open "
            f"the copy"
        )
    # Opening read-only can still create the -wal and -shm side files of a WAL database: remove those we
    # made if the file turns out not to be ours, so a refused file is left exactly as it was found.
    side = [Path(f"{path}{suffix}") for suffix in ("-wal", "-shm")]
    existed = [p.exists() for p in side]
    try:
        return _read_version(path)
    except StoreError:
        for p, was in zip(side, existed):
            if not was and p.exists():
                p.unlink()
        raise


def _read_version(path: Path) -> int | None:
    try:
        # on read-only media a WAL database cannot even be read the usual way (it needs its -shm file)
        flags = "mode=ro" if writable(path) else "mode=ro&immutable=1"
        con = sqlite3.connect(f"file:{path}?{flags}", uri=True, timeout=10)
        try:
            con.execute("PRAGMA schema_version").fetchone()
            names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not names:
                return None
            if "pgg_meta" not in names:
                raise StoreError(
                    f"{path} is a SQLite database of another program (no pgg_meta table); refusing to use it as a store"
                )
            rows = dict(con.execute("SELECT key, value FROM pgg_meta").fetchall())
        finally:
            con.close()
    except sqlite3.DatabaseError as err:
        raise StoreError(f"{path} is damaged or truncated ({err}); refusing to use it as a store") from None
    if rows.get("app") != APP_ID:
        raise StoreError(f"{path} is not a pgg store; refusing to use it")
    try:
        return int(rows["schema_version"])
    except (KeyError, ValueError):
        raise StoreError(f"{path} has no readable schema version (damaged?); refusing to use it") from None


def check_creatable(path: Path) -> None:
    """A new store can be made at `path`: its folder exists and can be written, and no side files of a
    deleted store are in the way."""
    parent = path.resolve().parent
    if not parent.is_dir():
        raise StoreError(f"cannot create store {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise StoreError(f"cannot create store {path}: folder {parent} is not writable")
    orphans = [p.name for p in (Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]
    if orphans and not path.exists():
        raise StoreError(
            f"cannot create store {path}: {' and '.join(orphans)} of a deleted store are still "
            f"there; move them away (they may hold its last writes) or delete them"
        )


# ---------------------------------------------------------------------------------------------------
# connections


def create_engine(url: str) -> Engine:
    """An engine for a store file that passed `inspect` (ours, or new): every connection runs in WAL with a
    busy timeout, and a write transaction (a connection Store.write marks `pgg_write`) begins IMMEDIATE."""
    engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
    event.listen(engine, "connect", _set_pragmas)
    event.listen(engine, "begin", _begin)
    return engine


def create_read_only_engine(path: Path) -> Engine:
    """An engine that reads a store which cannot be written (read-only media): SQLite's immutable open."""
    return sa.create_engine(
        f"sqlite:///file:{path.resolve()}?mode=ro&immutable=1&uri=true", connect_args={"check_same_thread": False}
    )


def _set_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Autocommit at the driver level so that our own BEGIN (DEFERRED or IMMEDIATE) is the only one.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")
    # WAL is a property of the file; asking again on a WAL file is a no-op. Only files that passed
    # inspect (ours, or new) ever reach this point.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get("pgg_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if mode else "BEGIN")


# ---------------------------------------------------------------------------------------------------
# the write-ahead log's committed writes, read from SQLite's own file formats (see the top)

WAL_HEADER = 32
FRAME_HEADER = 24
INDEX_HEADER = 48  # two copies, then the checkpoint info
INDEX_READ = 2 * INDEX_HEADER + 4  # ... of which only nBackfill is read
INDEX_VERSION = 3007000


def _u32(b: bytes, at: int) -> int:
    return int.from_bytes(b[at : at + 4], sys.byteorder)


def _index(shm: Path) -> bytes | None:
    try:
        with open(shm, "rb") as f:  # not while this process holds SQLite locks on it (inspect: first open only)
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
        if index is None or not _initialised(index) or index[:INDEX_HEADER] != index[INDEX_HEADER : 2 * INDEX_HEADER]:
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
    return (
        f"{what}: committed writes not yet in {db.name} (at least {missing} page(s)) would be silently dropped; "
        f"put the whole {wal.name} back, or keep a copy as it is (`pgg backup --as-is FILE`) and, to accept the "
        f"loss, move {shm.name} away and open again"
    )


def copy_as_is(db: Path, dest: Path) -> list[Path]:
    """The store file and its -wal and -shm, copied byte for byte without opening them: what a store that
    refuses to open (a cut WAL) looked like, kept before anyone accepts a loss. Returns the files written."""
    if dest.exists():
        raise ConfigError(f"{dest} exists; choose a new file")
    if not db.is_file():
        raise ConfigError(f"no store file {db}")
    written = []
    for suffix in ("", "-wal", "-shm"):
        src = db.with_name(db.name + suffix)
        if src.is_file():
            out = dest.with_name(dest.name + suffix)
            shutil.copyfile(src, out)
            written.append(out)
    return written


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
