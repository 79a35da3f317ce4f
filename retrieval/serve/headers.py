"""Protective response headers, on every response the server sends.

* ``Content-Security-Policy``: scripts, styles, images and requests only from this server,
  no inline script, no plugins, and ``frame-ancestors 'none'`` so no site can frame the page
  (clickjacking). ``X-Frame-Options: DENY`` says the same to older browsers.
* ``X-Content-Type-Options: nosniff``: a browser never runs a served file as another type.
* ``Referrer-Policy: no-referrer``: photo and API addresses never leak to other sites.

The API page at ``/docs`` (Swagger UI, served from this server too) gets the same policy
plus ``data:`` images, which Swagger UI's icons are; it still allows no inline script.
"""

from __future__ import annotations

from retrieval.serve.security import ASGIApp, Message, Receive, Scope, Send

PAGE_CSP = (
    "default-src 'self'; base-uri 'none'; form-action 'self'; object-src 'none'; "
    "frame-ancestors 'none'"
)
DOCS_CSP = (
    "default-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'self'; object-src 'none'; frame-ancestors 'none'"
)
DOCS_PATH = "/docs"
COMMON = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)


class SecurityHeadersMiddleware:
    """Add the headers above to each response start, keeping any the app set itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = DOCS_CSP if scope.get("path") == DOCS_PATH else PAGE_CSP
        added = (*COMMON, (b"content-security-policy", csp.encode()))

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in added if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
