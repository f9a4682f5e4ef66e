"""`POST /admin/reload`: read the configuration file again and apply it (server/reload.py); master key only."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import errors
from ..net.server import Request, Response
from ..protocols import openai as protocol
from .app import Route, json_response
from .reload import ReloadRefused, reload_file

if TYPE_CHECKING:
    from .app import Gateway


def register(gateway: "Gateway") -> None:
    async def reload(request: Request) -> Response:
        if request.principal is not None:
            raise errors.PermissionDenied("only the master key may reload the configuration")
        if gateway.config_path is None:
            raise errors.Conflict("this gateway was not started from a configuration file: nothing to reload")
        try:
            summary = await reload_file(gateway, gateway.config_path)
        except ReloadRefused as refused:
            body = {"error": {"message": refused.message, "type": refused.type, "code": refused.code,
                              "param": None}, "problems": refused.problems}
            return json_response(body, 400)
        return json_response({"status": "reloaded", **summary})

    gateway.add_route("/admin/reload", Route("POST", reload, protocol.render_error))
