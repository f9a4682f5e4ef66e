"""Token counting (`/v1/messages/count_tokens`): asked of the cloud that would serve the prompt, else estimated.

A count is free and changes nothing, so it is not a request in the ledger's or the breaker's sense: no quota is
reserved, no attempt recorded, no health verdict given. The plan is the one a Messages request would get (its
residency and routing order), and the count is asked of its deployments in turn until one whose cloud counts
answers (the Anthropic API, Claude on Vertex, Claude on Bedrock); a cloud without a counting call, or one
that fails, passes to the next. When none answers, the gateway's own estimate stands, and says it is one.
"""

from __future__ import annotations

from typing import Any

from . import errors
from .canonical import ChatRequest
from .context import RequestContext
from .routing.planner import plan


async def count_tokens(dispatcher: Any, req: ChatRequest, ctx: RequestContext,
                       estimate) -> tuple[int, str | None]:
    """(input tokens, the deployment that counted them); (estimate(req), None) when no cloud did."""
    group = dispatcher.group(req.model, ctx)
    principal = ctx.principal
    if principal is not None and principal.models is not None and group.name not in principal.models:
        raise errors.PermissionDenied(f"API key '{principal.name}' may not use model '{group.name}'",
                                      param="model", code="model_not_allowed")
    decision = plan(group, dispatcher.groups, dispatcher.view, dispatcher.clock(), dispatcher.rng, ctx)
    for deployment in decision.candidates[:decision.max_attempts]:
        try:
            return await dispatcher.providers[deployment.name].count_tokens(req.anthropic), deployment.name
        except errors.UnsupportedFeature:
            continue
        except errors.UpstreamError as exc:
            if not exc.retryable:  # the prompt itself is wrong: the cloud's words are the answer
                raise
    return estimate(req), None
