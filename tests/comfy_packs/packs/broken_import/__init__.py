"""Test pack whose import fails on a dependency that is not installed."""
import a_dependency_nobody_installed  # noqa: F401

NODE_CLASS_MAPPINGS = {}
