"""The Host allow-list: the defence against DNS rebinding.

A malicious site can point its own name at 127.0.0.1; the victim's browser then sends
that name in the ``Host`` header while treating the server as the site's own origin.
Answering only the names this server is really reached by (loopback, the bound address and
the names given with ``--allowed-host``) closes that door before any route runs.
Starlette's ``TrustedHostMiddleware`` does the matching (it parses ``host:port`` and
bracketed IPv6); this module chooses the names and answers refusals in the API's JSON form.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence

from starlette.middleware.trustedhost import TrustedHostMiddleware

from indexer.errors import UsageError
from retrieval.serve.security import ASGIApp, Message, Receive, Scope, Send, send_json

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
# Addresses that mean "every interface": a browser never sends them as a Host.
WILDCARD_ADDRESSES = ("0.0.0.0", "::")
_NAME = re.compile(r"(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*")
_PASSED = "objsearch.host_allowed"


def host_name(address: str) -> str:
    """How a browser writes ``address`` in a Host header: IPv6 in brackets, lowercase."""
    bare = address.strip().lower().strip("[]")
    try:
        ip = ipaddress.ip_address(bare)
    except ValueError:
        return bare.rstrip(".")
    return f"[{ip.compressed}]" if ip.version == 6 else ip.compressed


def checked_name(name: str) -> str:
    """A name given with ``--allowed-host``, or a clear error (no port, no lone ``*``)."""
    cleaned = host_name(name)
    if cleaned.startswith("[") or _NAME.fullmatch(cleaned):
        return cleaned
    raise UsageError(
        f"--allowed-host {name!r} is not a host name: give a name or address without a "
        "scheme or port (photos.example.org, 192.168.1.5, *.example.org)."
    )


def allowed_hosts(bound: str, extra: Iterable[str] = ()) -> list[str]:
    """Loopback names, the bound address (unless a wildcard) and the extra names."""
    names = list(LOOPBACK_NAMES)
    if bound.strip("[]") not in WILDCARD_ADDRESSES:
        names.append(host_name(bound))
    names += [checked_name(n) for n in extra]
    return list(dict.fromkeys(names))


class HostAllowList:
    """Refuse any request whose ``Host`` is not in ``hosts`` with 400 and a JSON error."""

    def __init__(self, app: ASGIApp, hosts: Sequence[str]) -> None:
        self.app = app
        self.check = TrustedHostMiddleware(self._passed, allowed_hosts=hosts, www_redirect=False)

    async def _passed(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[_PASSED] = True
        await self.app(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.check(scope, receive, send)
            return

        async def json_refusal(message: Message) -> None:
            if scope.get(_PASSED):
                await send(message)
            elif message["type"] == "http.response.start":  # the middleware's own 400
                await send_json(
                    send,
                    400,
                    {
                        "error": "This server does not answer to that Host name (see --allowed-host)."
                    },
                )

        await self.check(scope, receive, json_refusal)
