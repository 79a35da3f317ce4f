"""How the cross-site check reads origins (the requests themselves: test_browser_defences.py)."""

from __future__ import annotations

import pytest

from retrieval.serve.origin import normalized_origin, own_origin, request_origin


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8765", "http://127.0.0.1:8765"),
        ("HTTP://LocalHost", "http://localhost:80"),
        ("https://photos.example.test/", "https://photos.example.test:443"),
        ("http://[::1]:8765", "http://[::1]:8765"),
        ("null", None),
        ("http://", None),
        ("http://x:99999", None),
        ("ftp://files.example", None),
    ],
)
def test_normalized_origin(url: str, expected: str | None) -> None:
    assert normalized_origin(url) == expected


def test_origin_first_then_referer() -> None:
    both = {"headers": [(b"origin", b"http://a.test"), (b"referer", b"http://b.test/page?x=1")]}
    referer = {"headers": [(b"referer", b"http://b.test:81/page?x=1")]}
    assert request_origin(both) == "http://a.test"
    assert request_origin(referer) == "http://b.test:81"
    assert request_origin({"headers": []}) is None


def test_own_origin_follows_scheme_and_host() -> None:
    scope = {"scheme": "https", "headers": [(b"host", b"Photos.Example.Test")]}
    assert own_origin(scope) == "https://photos.example.test:443"
    assert own_origin({"scheme": "http", "headers": [(b"host", b"[::1]:8765")]}) == (
        "http://[::1]:8765"
    )
