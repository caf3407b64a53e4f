"""Exchange formats spikec reads and writes besides its own HDF5 file: NIR (docs/nir.md)."""
