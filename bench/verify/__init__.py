"""Verification: the history checker and the final read of a cell's topic."""
