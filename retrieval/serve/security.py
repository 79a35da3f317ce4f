"""Who may call the API and how much they may send.

Three rules, each an ASGI middleware or a check done once at start-up:

* a server reachable from other machines must have a token (``check_bind``), and is warned
  about when it has no TLS (``clear_text_warning``);
* with a token, every ``/api`` call carries it as ``Authorization: Bearer TOKEN`` or as the
  cookie that ``POST /api/v1/login`` sets (``TokenMiddleware``); wrong tokens are throttled
  per client (:mod:`.throttle`);
* request bodies are cut off at the upload limit before anything parses them
  (``BodyLimitMiddleware``), so a 5 GB upload never reaches the disk.

What a page in the user's own browser may do is limited beside it: :mod:`.hosts` (DNS
rebinding), :mod:`.origin` (cross-site requests) and :mod:`.headers` (CSP and friends).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.responses import JSONResponse

from indexer.errors import QueryError
from indexer.settings import DEFAULT_MAX_UPLOAD_MB
from retrieval.serve.throttle import LoginThrottle

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE_NAME = "objsearch_token"
LOGIN_PATH = "/api/v1/login"
DEFAULT_MAX_UPLOAD = int(DEFAULT_MAX_UPLOAD_MB * 1_000_000)
# Multipart framing (boundaries, part headers, other form fields) on top of the file itself.
FORM_OVERHEAD = 64 * 1024


class UploadTooLarge(Exception):
    """The request body went past the upload limit."""


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to expose the index to a network without a token."""
    if not is_loopback(host) and not token:
        raise QueryError(
            f"Binding to {host} makes the index reachable from other machines: "
            "give --token TOKEN (every API call must then carry it)."
        )


def clear_text_warning(host: str, tls: bool) -> str | None:
    """The warning for a network-reachable server without TLS, or None when none is due."""
    if tls or is_loopback(host):
        return None
    return (
        f"Warning: {host} is reachable from the network over plain HTTP, so the token and "
        "every photo travel in clear text. Give --tls-cert and --tls-key, or put a TLS "
        "reverse proxy in front (README, Security: 'Running on a LAN', Caddy or nginx with "
        "--allowed-host)."
    )


async def send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    """Answer a request directly from a middleware, in the API's error format."""
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def header_map(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def presented_token(scope: Scope) -> str | None:
    """The token a request carries: the Bearer header first, else the login cookie."""
    headers = header_map(scope)
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE_NAME:
            return value
    return None


def token_matches(given: str | None, token: str) -> bool:
    """Constant-time comparison, so response times do not leak the token."""
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def client_address(scope: Scope) -> str | None:
    client = scope.get("client")
    return client[0] if client else None


def locked_out(throttle: LoginThrottle, address: str | None) -> JSONResponse | None:
    """The 429 answer for a client that ``throttle`` has locked out (logged), or None."""
    wait = throttle.retry_after(address)
    if wait <= 0:
        return None
    throttle.refused(address, wait)
    return JSONResponse(
        {"error": f"Too many wrong tokens from this address: try again in {wait:.0f} s."},
        status_code=429,
        headers={"Retry-After": str(max(1, round(wait)))},
    )


class TokenMiddleware:
    """Answer 401 to any ``/api`` call without the token (the login endpoint excepted).

    A wrong token counts against the client in ``throttle``; a locked-out client gets 429.
    """

    def __init__(self, app: ASGIApp, token: str, throttle: LoginThrottle) -> None:
        self.app = app
        self.token = token
        self.throttle = throttle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] == "http"
            and scope.get("method") != "OPTIONS"  # CORS pre-flights carry no credentials
            and (path.startswith("/api/") or path in ("/docs", "/openapi.json"))
            and path != LOGIN_PATH
        ):
            address = client_address(scope)
            given = presented_token(scope)
            refusal = locked_out(self.throttle, address) if given is not None else None
            if refusal is not None:
                await refusal(scope, receive, send)
                return
            if not token_matches(given, self.token):
                if given is not None:
                    await asyncio.sleep(self.throttle.failed(address))
                await send_json(send, 401, {"error": "This server needs a token: log in first."})
                return
        await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """Refuse bodies over ``limit`` bytes: by Content-Length at once, else while streaming."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit + FORM_OVERHEAD

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = header_map(scope).get("content-length", "")
        if length.isdigit() and int(length) > self.limit:
            await send_json(send, 413, {"error": too_large_message(self.limit - FORM_OVERHEAD)})
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise UploadTooLarge(too_large_message(self.limit - FORM_OVERHEAD))
            return message

        await self.app(scope, limited, send)


def too_large_message(limit: int) -> str:
    return f"The upload is larger than the {limit / 1e6:g} MB limit."
