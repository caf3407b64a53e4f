"""Lava backend: bit-accurate fixed-point process models, the runner and the process-graph export."""
