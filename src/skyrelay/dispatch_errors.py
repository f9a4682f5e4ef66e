"""The one error for a request no deployment could serve: its status and message say why (rate limited, down,
fenced off by residency or the context window, refused by the concentration cap)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import errors
from .routing.health import COOLING_DOWN
from .routing.policies import CONCENTRATION, CONTEXT_WINDOW, RESIDENCY
from .routing.quotas import CONCURRENCY, QUOTA

if TYPE_CHECKING:
    from .context import RequestContext
    from .dispatch import Outcome


def residency_words(group: Any, ctx: RequestContext) -> str:
    """The residency policy in words, for an error that names it."""
    parts = []
    if group.residency is not None:
        parts.append(f"model group '{group.name}' residency [{', '.join(sorted(group.residency))}]")
    if ctx.residency is not None:
        parts.append(f"x-skyrelay-residency [{', '.join(sorted(ctx.residency))}]")
    return " and ".join(parts) or "the fallback groups' residency"


_RATE_LIMITED = (COOLING_DOWN, QUOTA, CONCURRENCY)
_FENCES = (RESIDENCY, CONTEXT_WINDOW)  # never opens with time: says nothing about the others being rate limited


def exhausted_error(group: str, decision: Any, outcome: Outcome,
                    refusals: list[errors.UnsupportedFeature] = (), *, residency: str = "") -> errors.GatewayError:
    """One error for a request no deployment could serve, with a status and message that say why.

    Nothing was tried and every deployment was fenced off: outside the residency policy only, 403 naming it;
    too small a context window for the prompt (outside residency or not), 400 context_length_exceeded. Allowed
    deployments that are down or at their limits answer as without the fences: 429 or 503."""
    parts = [f"{name}: {exc.message}" for name, exc in outcome.failures]
    parts += [exc.message for exc in refusals]
    parts += [f"{d.name}: {_SKIP_WORDS.get(reason, reason)}" if wait == float("inf")
              else f"{d.name}: {reason} limit reached" if reason == CONCURRENCY
              else f"{d.name}: {reason} for {wait:.1f}s more" for d, reason, wait in decision.skipped]
    failures = [exc for _, exc in outcome.failures]
    fenced = _fenced_off(decision, outcome, refusals)
    if fenced is not None:
        if fenced == RESIDENCY:
            return errors.PermissionDenied(
                f"no deployment of model '{group}' is allowed by the residency policy ({residency}): "
                + "; ".join(parts), code="residency_policy")
        return errors.InvalidRequest(
            f"the prompt is longer than the context window of every deployment of model '{group}' (and its "
            "context fallbacks) allowed to serve it: " + "; ".join(parts),
            param="messages", code="context_length_exceeded")
    waits = [exc.retry_after for exc in failures if exc.retry_after is not None]
    soonest = decision.soonest_available()
    if soonest is not None:
        waits.append(soonest)
    retry_after = min(waits) if waits else None
    capped = any(reason == CONCENTRATION for _, reason, _ in decision.skipped)
    if not failures:
        what = f"no deployment of model '{group}' is available right now"
        # Every one cooling down at its upstream's request (Retry-After) or at its quota means rate limited.
        # The cap refusing a vendor that could serve is a 429 too: its share frees with time.
        status = 429 if capped or all(reason in _RATE_LIMITED for _, reason, _ in decision.skipped
                                      if reason not in _FENCES) else 503
    else:
        what = f"all {len(failures)} attempt(s) for model '{group}' failed"
        if capped:  # the vendor that could have served was refused by the cap: the cap won, as configured
            status = 429
        elif all(isinstance(exc, errors.UpstreamRateLimited) for exc in failures):
            status = 429
        elif all(isinstance(exc, (errors.UpstreamUnavailable, errors.UpstreamRateLimited)) for exc in failures):
            status = 503
        else:
            status = 502
    if capped:
        what += ", within the vendor concentration cap (on_breach: refuse)"
    return errors.NoDeploymentAvailable(f"{what}: {'; '.join(parts)}", status=status, retry_after=retry_after)


_SKIP_WORDS = {RESIDENCY: "outside the residency policy",
               CONTEXT_WINDOW: "prompt longer than its context_window"}


def _fenced_off(decision: Any, outcome: Outcome, refusals) -> str | None:
    """RESIDENCY or CONTEXT_WINDOW when nothing was tried and every deployment was behind one of those fences."""
    if outcome.failures or refusals or decision.candidates or not decision.skipped:
        return None
    reasons = {reason for _, reason, _ in decision.skipped}
    if not reasons <= set(_FENCES):
        return None
    return CONTEXT_WINDOW if CONTEXT_WINDOW in reasons else RESIDENCY
