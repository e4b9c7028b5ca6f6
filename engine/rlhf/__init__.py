"""Segment-, token- and bandit-level RLHF PPO (the `rlhf` task; /work/shared/reference/rlhf.md)."""
