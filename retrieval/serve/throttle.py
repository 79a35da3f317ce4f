"""Slow down, then lock out, a client that keeps presenting a wrong token.

Every wrong token counts, whether it comes to the login form or as a Bearer header, so the
two cannot be used in turn to guess more. A client is its address (an IPv6 client its /64,
which one machine usually owns whole). The first ``free`` failures are answered at once, the
next each ``delay_s`` later, and after ``limit`` failures the client is refused with 429 for
``lockout_s``, even with the right token. A success clears the client's record. Waits are
``asyncio`` sleeps, so a slowed client holds no worker thread.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from indexer.settings import (
    LOGIN_DELAY_S,
    LOGIN_FREE_FAILURES,
    LOGIN_LOCKOUT_S,
    LOGIN_MAX_FAILURES,
)

log = logging.getLogger("objsearch.serve")
# Clients remembered at most; the oldest record goes first (an attacker with many
# addresses cannot grow the table without bound).
MAX_CLIENTS = 10_000


def client_key(address: str | None) -> str:
    """The unit a limit applies to: an IPv4 address, or an IPv6 address's /64."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        if not ip.is_loopback:
            return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


@dataclass
class _Record:
    failures: int = 0
    last: float = 0.0
    locked_until: float = 0.0


@dataclass
class LoginThrottle:
    """Per-client failure counts; the clock is injectable so tests need not wait."""

    free: int = LOGIN_FREE_FAILURES
    limit: int = LOGIN_MAX_FAILURES
    delay_s: float = LOGIN_DELAY_S
    lockout_s: float = LOGIN_LOCKOUT_S
    clock: Callable[[], float] = time.monotonic
    _clients: OrderedDict[str, _Record] = field(default_factory=OrderedDict, repr=False)

    def _now(self) -> float:
        return self.clock()

    def _record(self, key: str) -> _Record | None:
        record = self._clients.get(key)
        if record is None:
            return None
        now = self._now()
        if now >= record.locked_until and now - record.last > self.lockout_s:
            del self._clients[key]  # quiet for a whole lockout period: forgiven
            return None
        return record

    def retry_after(self, address: str | None) -> float:
        """Seconds ``address`` must still wait before it may try again (0: it may now)."""
        record = self._record(client_key(address))
        return 0.0 if record is None else max(0.0, record.locked_until - self._now())

    def failed(self, address: str | None) -> float:
        """Count a wrong token; the seconds to wait before answering it."""
        key = client_key(address)
        record = self._record(key) or _Record()
        record.failures += 1
        record.last = self._now()
        self._clients[key] = record
        self._clients.move_to_end(key)
        while len(self._clients) > MAX_CLIENTS:
            self._clients.popitem(last=False)
        log.warning("wrong token from %s (%d in a row)", key, record.failures)
        if record.failures >= self.limit:
            record.locked_until = record.last + self.lockout_s
            record.failures = 0
            log.warning(
                "%s locked out for %g s after %d wrong tokens", key, self.lockout_s, self.limit
            )
        return self.delay_s if record.failures > self.free else 0.0

    def refused(self, address: str | None, wait: float) -> None:
        """Log a 429 (the address only: a token is never logged)."""
        log.warning(
            "refused a login from %s: locked out for %.0f s more", client_key(address), wait
        )

    def succeeded(self, address: str | None) -> None:
        self._clients.pop(client_key(address), None)
