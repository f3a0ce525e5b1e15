"""Speed benchmarks: every figure against a baseline measured in the same run (`python -m benchmarks.run`)."""
