"""Close the connection after any answer given before the request body was read in full.

The ingress refuses most bad requests before reading their body (401 without credentials,
415, 413 by ``Content-Length``, 404, 405): that is what keeps an unknown client from making it
read anything. But HTTP/1.1 keeps the connection open after the answer, so the server goes
on receiving the rest of that body to find where the next request starts, and uvicorn's
keep-alive timer, which would drop an idle connection, is reset by every byte that arrives.
A client that trickles a body after its 401 would hold the connection for as long as it
likes. So an answer sent while the body is still unread says ``Connection: close`` (RFC 9112
section 9.6), and the server closes the connection as soon as the answer is sent; a client
that has sent its whole body (every accepted event) keeps its connection.

A signed-in caller's body is read, within ``HUB_INGRESS_BODY_TIMEOUT`` (``hub.ingress.app``);
its 408 comes before the body ends, so it too closes the connection here.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CloseUnreadBody"]


class CloseUnreadBody:
    """ASGI middleware: ``Connection: close`` on a response that precedes the body's end."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request through, watching its body and marking an early response."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_done = False

        async def watched_receive() -> Message:
            nonlocal body_done
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                body_done = True
            elif message["type"] == "http.disconnect":
                body_done = True  # nothing more will arrive: nothing to close early
            return message

        async def closing_send(message: Message) -> None:
            if message["type"] == "http.response.start" and not body_done:
                headers = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() != b"connection"
                ]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, watched_receive, closing_send)
