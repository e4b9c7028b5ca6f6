"""A store that refuses to open (its -wal cut short) can still be kept as it is before anyone accepts the loss
(issue 25 item 9): `pgg backup` said only that the store refused."""

import os

from support.cli import one_clear_line, pgg
from test_store import _crash_after_writes, _frame, digest


def test_backup_as_is_keeps_a_store_whose_wal_was_cut(tmp_path):
    db = str(tmp_path / "crashed.db")
    _crash_after_writes(db, 20)
    wal = tmp_path / "crashed.db-wal"
    os.truncate(wal, wal.stat().st_size - _frame(db) // 2)
    refused = one_clear_line(pgg("--db", db, "backup", str(tmp_path / "copy.db")))
    assert "would be silently dropped" in refused and "pgg backup --as-is" in refused
    r = pgg("--db", db, "backup", "--as-is", str(tmp_path / "kept.db"))
    assert r.exit_code == 0, r.output
    for suffix in ("", "-wal", "-shm"):
        assert digest(tmp_path / f"kept.db{suffix}") == digest(tmp_path / f"crashed.db{suffix}")
    assert "exists" in one_clear_line(pgg("--db", db, "backup", "--as-is", str(tmp_path / "kept.db")))


def test_with_every_checkpoint_torn_the_error_names_both(tmp_path):
    """Issue 25 item 9: with last.pt and its .prev both torn, the error named only the fallback."""
    import pytest
    import torch

    from engine import checkpoint
    from engine.errors import EngineError
    from engine.identity import Identity

    ident = Identity("u1", ("u1",), "h1")
    path = tmp_path / "ckpt" / "last.pt"
    checkpoint.save(path, {"x": torch.ones(2)}, ident)
    checkpoint.save(path, {"x": torch.zeros(2)}, ident)
    for p in (path, path.with_name("last.pt.prev")):
        p.write_bytes(p.read_bytes()[:40])
    with pytest.raises(EngineError) as err:
        checkpoint.load(path, ident, torch.device("cpu"))
    text = str(err.value)
    assert "both checkpoints are damaged" in text and "last.pt (" in text and "last.pt.prev (" in text
    assert "\n" not in text
