"""One error vocabulary for pgg. Each boundary (CLI, app, run entry) maps these to one clear line."""


class PggError(Exception):
    """An error meant for the person at the keyboard: `str(err)` is the one line they see."""

    title = "error"


class ConfigError(PggError):
    """Bad input: unknown task, dataset, method or preset, a malformed override, a bad seed range."""

    title = "bad input"


class StoreError(PggError):
    """The experiment store cannot be opened or used: corrupt, foreign, newer, read-only."""

    title = "store"


class EngineError(PggError):
    """Training cannot start or go on: a model or a dataset cannot be loaded, a device is missing."""

    title = "engine"


class Cancelled(Exception):
    """Raised inside a run when a cancel request arrives; the run saves a checkpoint and stops."""
