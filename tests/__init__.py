"""The test suite; helpers shared across folders are imported as `tests.<module>` (e.g. tests.tiny_models)."""
