"""Measurement: vectorised HDR recording, per-second series, steady-state detection, .hgrm/.hlog files."""
