"""Wrong tokens slow a client down, then lock it out; the real server answers 429."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from retrieval.serve.throttle import LoginThrottle, client_key
from tests.fixtures.server import API, Server, run_server

TOKEN = "throttle-s3cret"
WRONG = "wrong-guess-"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_free_then_slowed_then_locked_then_forgiven() -> None:
    clock = Clock()
    throttle = LoginThrottle(free=2, limit=4, delay_s=0.5, lockout_s=60, clock=clock)
    assert [throttle.failed("10.0.0.1") for _ in range(3)] == [0.0, 0.0, 0.5]
    assert throttle.retry_after("10.0.0.1") == 0
    throttle.failed("10.0.0.1")  # the limit: locked
    assert throttle.retry_after("10.0.0.1") == 60
    assert throttle.retry_after("10.0.0.2") == 0  # per client
    clock.now += 59
    assert throttle.retry_after("10.0.0.1") == pytest.approx(1)
    clock.now += 1
    assert throttle.retry_after("10.0.0.1") == 0
    assert throttle.failed("10.0.0.1") == 0.0  # counting starts again after the lockout


def test_success_clears_and_quiet_time_forgives() -> None:
    clock = Clock()
    throttle = LoginThrottle(free=1, limit=3, delay_s=1, lockout_s=10, clock=clock)
    throttle.failed("10.0.0.1")
    assert throttle.failed("10.0.0.1") == 1
    throttle.succeeded("10.0.0.1")
    assert throttle.failed("10.0.0.1") == 0.0
    clock.now += 11
    assert throttle.failed("10.0.0.1") == 0.0  # a failure long ago is forgotten


def test_client_keys() -> None:
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::2")
    assert client_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert client_key("::ffff:10.0.0.1") == "10.0.0.1"
    assert client_key("::1") == "::1"
    assert client_key(None) == "unknown"


@pytest.fixture(scope="module")
def throttled_server(served_index: Path, models) -> Iterator[Server]:
    fast = ("--login-delay-s", "0.01", "--login-lockout-s", "2")
    with run_server(served_index, models.clip_dir, "--token", TOKEN, *fast) as server:
        yield server


def test_wrong_tokens_end_in_429_and_the_right_one_works_after_the_wait(
    throttled_server: Server,
) -> None:
    with throttled_server.client() as client:
        for n in range(20):
            wrong = client.post(f"{API}/login", data={"token": f"{WRONG}{n}"})
            assert wrong.status_code == 401, (n, wrong.text)
        locked = client.post(f"{API}/login", data={"token": TOKEN})
        assert locked.status_code == 429, locked.text
        assert "try again" in locked.json()["error"]
        assert int(locked.headers["retry-after"]) >= 1
        bearer = client.get(f"{API}/status", headers={"Authorization": f"Bearer {TOKEN}"})
        assert bearer.status_code == 429  # the API refuses the locked client too
        # Wait out the lockout by asking: no clock in the test, only the server's answer.
        for _ in range(200):
            answer = client.post(f"{API}/login", data={"token": TOKEN})
            if answer.status_code != 429:
                break
            time.sleep(0.1)
        assert answer.status_code == 200, answer.text
        assert client.get(f"{API}/status").status_code == 200  # the cookie works
    output = throttled_server.output()
    assert "refused a login from 127.0.0.1" in output
    assert "locked out" in output
    assert TOKEN not in output and WRONG not in output


def test_wrong_bearer_tokens_count_too(throttled_server: Server) -> None:
    with throttled_server.client() as client:
        for n in range(20):
            wrong = client.get(f"{API}/status", headers={"Authorization": f"Bearer {WRONG}{n}"})
            assert wrong.status_code == 401
        assert client.post(f"{API}/login", data={"token": TOKEN}).status_code == 429
        # A request with no token at all is not a guess: it still gets the plain 401.
        assert client.get(f"{API}/status").status_code == 401
