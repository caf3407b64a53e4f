"""lava-dl netx: HDF5 export for Intel's loader and a runner for exported files."""
