"""heihei benchmarks (see bench/README.md); importable so tests can check the harness helpers."""
