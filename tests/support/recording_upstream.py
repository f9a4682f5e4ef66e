"""A canned upstream on 127.0.0.1 that records what it was sent: for provider tests that check the exact request
a provider builds on the wire (what it answers comes from the test, through `reply`)."""

from __future__ import annotations

from skyrelay.net.server import start_server


class RecordingUpstream:
    def __init__(self, reply=None):
        self.requests = []
        self.reply = reply  # () -> Response | StreamResponse
        self.server = None

    async def handle(self, request):
        self.requests.append(request)
        return self.reply()

    async def __aenter__(self):
        self.server = await start_server(self.handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc):
        await self.server.close(grace=0.1)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.port}"
