"""Checkpoints a killed run resumes from: written durably, read safely, and only by the run that wrote them.

Both trainers save their state through `save` and read it back through `load`. A checkpoint carries the
identity of its run (uid and config hash); a run resumes only a checkpoint of its own lineage (itself and
the attempts it retries) with the same config, so a folder left by another run is refused, never
loaded. Writes go to a temporary file, fsync'ed, then renamed over the old one, which is kept as
`<name>.prev` for one fallback if the newest is found damaged. A write that fails (a full disk) removes its
temporary file and raises one line; the checkpoints before it are untouched. Reads use
`weights_only=True`: a crafted file cannot run code.
"""

from __future__ import annotations

import contextlib
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.errors import EngineError
from engine.identity import Identity


def save(path: Path, data: dict[str, Any], identity: Identity | None) -> None:
    data = dict(data, identity=None if identity is None else dict(uid=identity.uid, config_hash=identity.config_hash))
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            torch.save(data, f)
            f.flush()
            os.fsync(f.fileno())  # the rename below must never publish a file whose bytes are not on disk
    except (OSError, RuntimeError) as err:
        cause = err if isinstance(err, OSError) else err.__context__  # torch wraps the OSError of a write
        if not isinstance(cause, OSError):
            raise
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)  # a torn file would keep the space it took
        raise EngineError(
            f"cannot write checkpoint {path}: {cause.strerror or cause}; the checkpoints before it are kept "
            f"(free space there, then `pgg retry` resumes from them)"
        ) from None
    if path.exists():
        os.replace(path, path.with_name(path.name + ".prev"))
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def load(path: Path, identity: Identity | None, device: torch.device, log: Any = None) -> dict[str, Any] | None:
    """The checkpoint at `path` (or its `.prev` if the newest is damaged); None if there is none.
    Raises EngineError, one line, for a damaged checkpoint with no fallback or one of another run."""
    prev = path.with_name(path.name + ".prev")
    if not path.exists() and not prev.exists():
        return None
    try:
        data = _read(path, device)
    except EngineError as err:
        if not prev.exists():
            raise
        if log is not None:
            log(f"{err}; resuming from the checkpoint before it ({prev.name})")
        try:
            data = _read(prev, device)
        except EngineError as err_prev:  # both torn: name both, not only the fallback
            raise EngineError(
                f"both checkpoints are damaged: {path.name} ({reason(err)}) and {prev.name} "
                f"({reason(err_prev)}) in {path.parent}; delete them to start this run over"
            ) from None
    check(data, path, identity)
    return data


def reason(err: EngineError) -> str:
    """What `_read` said was wrong, without the path and the advice."""
    text = str(err)
    return text[text.find("(") + 1 : text.rfind(")")] if "(" in text else text


def _read(path: Path, device: torch.device) -> dict[str, Any]:
    try:
        data = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise EngineError(f"checkpoint {path} is missing") from None
    except Exception as err:  # truncated, corrupt, or not a checkpoint at all
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise EngineError(f"checkpoint {path} is damaged ({first}); delete it to start this run over") from None
    if not isinstance(data, dict):
        raise EngineError(f"checkpoint {path} is not a pgg checkpoint; delete it to start this run over")
    return data


def check(data: dict[str, Any], path: Path, identity: Identity | None) -> None:
    """Refuse a checkpoint written by another run, or by this lineage under another config."""
    if identity is None:
        return
    mine = data.get("identity") or {}
    if mine.get("uid") not in identity.lineage:
        raise EngineError(
            f"checkpoint {path} was written by another run (uid {mine.get('uid')}); refusing to "
            f"resume from it. Move the folder away or queue the run again"
        )
    if mine.get("config_hash") != identity.config_hash:
        raise EngineError(f"checkpoint {path} was written with another config; refusing to resume from it")


def rng_state(np_rng: np.random.Generator | None = None) -> dict[str, Any]:
    return dict(
        torch=torch.get_rng_state(),
        python=random.getstate(),
        numpy=np_rng.bit_generator.state if np_rng is not None else None,
        cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    )


def restore_rng(state: dict[str, Any], np_rng: np.random.Generator | None = None) -> None:
    torch.set_rng_state(state["torch"].cpu())
    random.setstate(_as_tuple(state["python"]))
    if np_rng is not None and state.get("numpy") is not None:
        np_rng.bit_generator.state = state["numpy"]
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])  # map_location moved them


def _as_tuple(x: Any) -> Any:
    """random.setstate wants the nested tuples back (a load may hand lists)."""
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
