"""Helpers shared by the actor tree: guarded actor base, timer, host names, process state."""
