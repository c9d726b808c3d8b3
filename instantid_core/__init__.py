"""InstantID math and I/O: importable and testable without ComfyUI."""
