"""Keys, teams, rate limits and budgets: who may call, which models, how fast, for how much.

principals.py resolves a presented key to its Principal (one dict lookup by sha256 digest); admission.py
enforces its models, limits and budgets, reserved before the call and settled at its end, on the shared state
(skyrelay.state). See docs/governance.md.
"""

from .admission import Governor, KeyRateLimited
from .principals import KeyBook, Principal

__all__ = ["Governor", "KeyBook", "KeyRateLimited", "Principal"]
