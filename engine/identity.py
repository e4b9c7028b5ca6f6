"""Run identity: what ties a checkpoint to the run that wrote it. Stdlib only (the CLI imports it)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Identity:
    uid: str  # the run writing checkpoints
    lineage: tuple[str, ...]  # uids whose checkpoints it may resume: itself and its earlier attempts
    config_hash: str


def config_hash(config_json: str) -> str:
    """A stored config's fingerprint: the same settings give the same hash, however the JSON was spaced."""
    return hashlib.sha256(json.dumps(json.loads(config_json), sort_keys=True).encode()).hexdigest()[:16]
