"""Helpers shared by the test suites (schema oracles, fixtures' building blocks)."""
