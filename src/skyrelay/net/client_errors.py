"""The upstream client's failures, by the phase in which they happen; providers map them to the gateway's errors."""

from __future__ import annotations


class ClientError(Exception):
    """Base of the transport failures; providers map these to the gateway's typed errors."""


class ConnectFailed(ClientError):
    """The origin refused or could not be reached."""


class ConnectTimeout(ClientError):
    """No connection within the connect timeout."""


class FirstByteTimeout(ClientError):
    """Connected and sent, but no response head within the first-byte timeout."""


class TotalTimeout(ClientError):
    """The whole exchange (body included) took longer than the total timeout."""


class SlowReaderTimeout(TotalTimeout):
    """The total ran out while the body's reading was paused for a reader that keeps too much unread (a slow
    client downstream): the reader's pace, not the upstream's."""


class ReadTimeout(ClientError):
    """The upstream went quiet in the middle of a body (a stalled stream) for longer than the first-byte timeout."""


class ConnectionClosed(ClientError):
    """The peer closed or reset the connection before the response was complete."""

    def __init__(self, message: str, *, before_response: bool, unsent: bool = False):
        super().__init__(message)
        self.before_response = before_response
        self.unsent = unsent  # provably never reached the upstream (the write failed): safe to send again


class ProtocolError(ClientError):
    """The peer answered something that is not HTTP/1.1."""
