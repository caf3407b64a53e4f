"""PyTorch backend: fused integer scans on CPU or GPU (int64, exact float32 and int8 paths)."""
