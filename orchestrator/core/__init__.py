"""Pure logic: what to mask and how strongly. Imports NumPy (and CuPy through `xp`) only; no I/O."""
