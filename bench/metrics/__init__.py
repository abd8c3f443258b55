"""Measurement: vectorised HDR recording (hdr), per-second series (series), steady-state detection (steady),
.hgrm/.hlog files (files)."""
