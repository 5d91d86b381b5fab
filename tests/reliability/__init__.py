"""Reliability tests: bad config, checkpoints, NaN guard, interruption, safety (issue 5)."""
