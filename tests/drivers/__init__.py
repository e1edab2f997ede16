"""The equivalence suite: every PEP 249 driver in the matrix, raw and instrumented, side by side."""
