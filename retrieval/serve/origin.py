"""Refuse cross-site requests that change state or upload (a CSRF defence).

Browsers add ``Origin`` to every ``POST`` (``Referer`` on some older paths), and a site
cannot forge it. A request whose origin is neither this server's own (the scheme it is
reached by plus the ``Host`` already allow-listed) nor the ``--cors`` origin gets 403 before
anything parses its body. Non-browser clients send no ``Origin`` and are not affected; GET
requests are left alone, since the same-origin policy already keeps their answers from a
foreign page.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from retrieval.serve.security import ASGIApp, Receive, Scope, Send, header_map, send_json

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_PORTS = {"http": 80, "https": 443}


def normalized_origin(url: str) -> str | None:
    """``scheme://host:port`` of a URL, lowercase with the port always written; None if invalid."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname or port is None:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme.lower()}://{host.lower()}:{port}"


def request_origin(scope: Scope) -> str | None:
    """The origin a browser sent: ``Origin`` first, else the ``Referer``'s."""
    headers = header_map(scope)
    if "origin" in headers:
        return headers["origin"]
    referer = headers.get("referer")
    if referer is None:
        return None
    split = urlsplit(referer)
    return f"{split.scheme}://{split.netloc}"


def own_origin(scope: Scope) -> str | None:
    """This server's origin as the client reaches it (the scheme reflects TLS or a proxy)."""
    host = header_map(scope).get("host", "")
    return normalized_origin(f"{scope.get('scheme', 'http')}://{host}")


class SameOriginMiddleware:
    """403 for a state-changing request sent from another site's page."""

    def __init__(self, app: ASGIApp, cors: str | None = None) -> None:
        self.app = app
        self.cors = normalized_origin(cors) if cors else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method", "GET") not in SAFE_METHODS:
            sent = request_origin(scope)
            if sent is not None:
                origin = normalized_origin(sent)  # "null" (a sandboxed page) becomes None
                if origin is None or origin not in (own_origin(scope), self.cors):
                    await send_json(
                        send,
                        403,
                        {
                            "error": f"Cross-site request refused: {sent[:200]} is not this "
                            "server's origin (start it with --cors ORIGIN to allow one)."
                        },
                    )
                    return
        await self.app(scope, receive, send)
