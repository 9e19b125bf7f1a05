"""The benchmark: the service against the leanest reference consumer (python -m bench)."""
