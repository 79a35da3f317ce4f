"""Which Host names the server answers (the requests themselves: test_browser_defences.py)."""

from __future__ import annotations

import pytest

from indexer.errors import UsageError
from retrieval.serve.hosts import allowed_hosts, checked_name, host_name


def test_loopback_names_are_always_allowed() -> None:
    assert allowed_hosts("127.0.0.1") == ["localhost", "127.0.0.1", "[::1]"]


@pytest.mark.parametrize(
    ("bound", "added"),
    [("192.168.1.5", "192.168.1.5"), ("::1", "[::1]"), ("[FE80::1]", "[fe80::1]"),
     ("Photos.Local", "photos.local")],
)  # fmt: skip
def test_the_bound_address_is_allowed_as_a_browser_writes_it(bound: str, added: str) -> None:
    assert allowed_hosts(bound)[-1] == added


@pytest.mark.parametrize("wildcard", ["0.0.0.0", "::", "[::]"])
def test_a_wildcard_bind_adds_no_name(wildcard: str) -> None:
    assert allowed_hosts(wildcard, ["photos.example.test"]) == [
        "localhost", "127.0.0.1", "[::1]", "photos.example.test",
    ]  # fmt: skip


def test_extra_names_are_checked() -> None:
    assert allowed_hosts("127.0.0.1", ["A.example.TEST", "*.lan", "10.0.0.7", "localhost"])[3:] == [
        "a.example.test", "*.lan", "10.0.0.7",
    ]  # fmt: skip
    assert host_name("2001:DB8::1") == "[2001:db8::1]"
    for bad in ("*", "photos.example.test:8443", "https://photos.example.test", "a b", "*x.lan"):
        with pytest.raises(UsageError, match="not a host name"):
            checked_name(bad)
