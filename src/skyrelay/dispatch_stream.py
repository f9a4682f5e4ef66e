"""A stream after the attempt loop: reading its head before committing (so early failures still fail over), and
the committed stream, which reports its verdict on the deployment's health once, at its end."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, AsyncIterator, Callable

from . import errors
from .canonical import UNREPORTED_USAGE, ChatChunk, ChatRequest
from .providers.base import OpenedStream, Provider

if TYPE_CHECKING:
    from .dispatch import Dispatcher, Outcome

log = logging.getLogger("skyrelay.dispatch")


class CommittedStream:
    """The stream of the deployment that won the attempt loop. After this point a failure cannot fail over: it
    ends the stream as UpstreamStreamBroken. The stream reports its verdict to the health book once, at its
    end: success when the upstream finished it, failure when it broke, none (a half-open probe slot freed) when
    the client left first. `aclose` releases the deployment's outstanding slot, settles its quota reservation and
    closes the request's context exactly once, even for a stream dropped before anyone iterated it (the client
    left while the head was being read)."""

    __slots__ = ("_dispatcher", "_outcome", "_name", "_head", "_rest", "_released", "_usage", "_opened")

    def __init__(self, dispatcher: Dispatcher, outcome: Outcome, head: list[ChatChunk],
                 rest: AsyncIterator[ChatChunk], opened: list[OpenedStream] | None = None):
        self._dispatcher = dispatcher
        self._outcome = outcome
        self._name = outcome.deployment.name
        self._head = head
        self._rest = rest
        self._released = False
        self._usage = None  # the usage chunk, when the cloud sent one: what the quota is settled with
        self._opened = opened  # the upstream response and its decoder (stream_head): what `pipe` needs

    def __aiter__(self) -> "CommittedStream":
        return self

    def peek(self) -> ChatChunk | None:
        """The next chunk, left in place, when it has arrived already (the head that committed the stream)."""
        return self._head[0] if self._head else None

    def pipe(self, write: Callable[[bytes], bool], flush: Callable[[], None],
             render: Callable[[ChatChunk], bytes] | None = None) -> None:
        """Let the events a pass-through decoder would forward unread go from the upstream's socket to `write`
        directly (the client's writer), without waking the task that reads this stream: a trickled stream's
        plain text events then cost no task switch and no chunk. Everything the gateway reads (usage, the end,
        errors) still comes through here, in order; `flush` sends what `write` took of an upstream read. A
        translating decoder's plain text events go the same way when the route gives the `render` of its
        protocol (the chunks it would render itself); without it, or for decoders with no such reading, a no-op."""
        if self._opened:
            resp, decoder = self._opened[0]
            make_sink = getattr(decoder, "sink", None)
            if make_sink is not None:
                resp.pipe(make_sink(write), flush)
            elif render is not None and hasattr(decoder, "translated"):
                sink = decoder.translated(write, render)
                if sink is not None:
                    resp.pipe(sink, flush)

    async def __anext__(self) -> ChatChunk:
        if self._head:
            chunk = self._head.pop(0)
        else:
            try:
                chunk = await self._rest.__anext__()
            except StopAsyncIteration:
                if not self._released:
                    self._dispatcher.health.on_success(self._name, self._dispatcher.clock())
                    await self._release("ok")
                raise
            except errors.UpstreamError as exc:
                if not self._released:
                    self._dispatcher._record_failure(self._name, exc)
                    await self._release("failed", exc)
                raise errors.UpstreamStreamBroken(exc.message, deployment=self._name) from None
            except errors.GatewayError:
                await self.aclose()
                raise
            except Exception:  # this request's problem, as in the attempt loop: end the stream, charge no one
                log.exception("stream of deployment %s failed on this request", self._name)
                await self.aclose()
                raise errors.InternalError() from None
        if chunk.usage is not None and chunk.usage is not UNREPORTED_USAGE:
            self._usage = chunk.usage
        return chunk

    async def aclose(self) -> None:
        """The caller is done, maybe before the end (the client went away): no verdict on the deployment."""
        if not self._released:
            self._dispatcher.health.on_abandoned(self._name, self._dispatcher.clock())
            await self._release("abandoned")

    async def _release(self, status: str, error: BaseException | None = None) -> None:
        self._released = True
        dispatcher, outcome = self._dispatcher, self._outcome
        dispatcher.outstanding[self._name] -= 1
        ctx = outcome.context
        ctx.usage = self._usage
        dispatcher.end_attempt(outcome.deployment, outcome.attempt, outcome.reservation, status, error=error,
                               usage=self._usage, ctx=ctx)
        ctx.close()
        await self._rest.aclose()


async def stream_head(provider: Provider, req: ChatRequest
                      ) -> tuple[list[ChatChunk], AsyncIterator[ChatChunk], list[OpenedStream]]:
    """Open the stream and read up to its first real output (within the first-byte timeout); also what was
    opened (the upstream response and its decoder, for CommittedStream.pipe).

    Most clouds open with a role-only chunk, then may still fail (throttled, overloaded) before a token: holding
    that chunk back until output follows keeps such failures invisible to the client, who gets the stream of
    the next deployment instead of an error a few bytes in."""
    opened: list[OpenedStream] = []
    stream = provider.chat_stream(req, opened)
    timeout = provider.deployment.timeouts.first_byte
    head: list[ChatChunk] = []
    try:
        # One deadline for the whole head (asyncio.wait_for per chunk would run each chunk in a task of its own).
        async with asyncio.timeout(timeout):
            while True:
                chunk = await stream.__anext__()
                head.append(chunk)
                if chunk.has_output() or len(head) >= _MAX_PREAMBLE:
                    return head, stream, opened
    except StopAsyncIteration:
        if head:  # a stream that ended after only its preamble is still a (short) answer
            return head, stream, opened
        raise errors.UpstreamProtocolError(
            f"deployment '{provider.name}' ended the stream before any chunk", deployment=provider.name) from None
    except asyncio.TimeoutError:
        await stream.aclose()
        raise errors.UpstreamTimeout(
            f"deployment '{provider.name}': no output within {timeout:g}s", deployment=provider.name) from None
    except BaseException:
        await stream.aclose()
        raise


_MAX_PREAMBLE = 4  # a cloud that keeps sending empty chunks is committed to after this many
