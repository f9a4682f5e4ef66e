"""HTTP glue only: routes, auth, request parsing, streaming responses."""

from .app import Gateway

__all__ = ["Gateway"]
