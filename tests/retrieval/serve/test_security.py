"""The token rule, CORS, binding, path traversal and files swapped after indexing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from PIL import Image

from indexer.store import Store
from retrieval.serve.security import check_bind, is_loopback
from tests.fixtures.server import Server, objsearch_command, run_server, server_env

API = "/api/v1"
TOKEN = "s3cret-token"
ORIGIN = "http://photos.example"


def test_loopback_rule() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", TOKEN)


def test_public_bind_without_token_is_refused(served_index: Path) -> None:
    result = subprocess.run(
        objsearch_command("serve", "--index", str(served_index), "--host", "0.0.0.0"),
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "--token" in result.stderr and "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def token_server(served_index: Path, models) -> Server:
    with run_server(served_index, models.clip_dir, "--token", TOKEN, "--cors", ORIGIN) as server:
        yield server


def test_every_api_call_needs_the_token(token_server: Server) -> None:
    with token_server.client() as client:
        for path in (
            "/status", "/search?q=cat", "/photos/1", "/regions/1/thumb", "/labels",
            "/regions?label=cat", "/folders", "/cameras", "/timeline", "/duplicates",
        ):  # fmt: skip
            response = client.get(API + path)
            assert response.status_code == 401 and "token" in response.json()["error"]
        wrong = client.get(f"{API}/status", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert client.get("/openapi.json").status_code == 401
        assert client.get("/").status_code == 200  # the page (with its login form) is public
        good = client.get(f"{API}/status", headers={"Authorization": f"Bearer {TOKEN}"})
        assert good.status_code == 200 and good.json()["photos"] > 0


def test_login_form_sets_a_cookie(token_server: Server) -> None:
    with token_server.client() as client:
        refused = client.post(f"{API}/login", data={"token": "wrong"})
        assert refused.status_code == 401 and not client.cookies
        accepted = client.post(f"{API}/login", data={"token": TOKEN})
        assert accepted.status_code == 200
        assert "httponly" in accepted.headers["set-cookie"].lower()
        assert client.get(f"{API}/search", params={"q": "a cat"}).status_code == 200


def test_cors_only_for_the_given_origin(server: Server, token_server: Server) -> None:
    plain = server.client().get(f"{API}/status", headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in plain.headers
    headers = {"Origin": ORIGIN, "Authorization": f"Bearer {TOKEN}"}
    allowed = token_server.client().get(f"{API}/status", headers=headers)
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    other = token_server.client().get(
        f"{API}/status", headers={**headers, "Origin": "http://evil.example"}
    )
    assert "access-control-allow-origin" not in other.headers
    preflight = token_server.client().options(
        f"{API}/search",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status_code == 200


TRAVERSALS = (
    "/api/v1/photos/..%2F..%2F..%2Fetc%2Fpasswd",
    "/api/v1/photos/%2Fetc%2Fpasswd/image",
    "/api/v1/photos/1%00/image",
    "/api/v1/photos/-1/image",
    "/api/v1/photos/1.0/image",
    "/api/v1/regions/..%2F1/thumb",
    "/api/v1/photos/%EF%BC%91",  # a full-width digit one
    "/static/..%2F..%2F..%2Fetc%2Fpasswd",
    "/static/../app.py",
    "/static/%2e%2e/app.py",
    "/api/v1/files?path=/etc/passwd",
    "/thumbs/1-256.jpg",
    "/objsearch.db",
)


@pytest.mark.parametrize("path", TRAVERSALS)
def test_traversal_is_404_and_reveals_nothing(server: Server, path: str) -> None:
    with httpx.Client(timeout=30) as client:
        # A raw request line, so no client-side normalisation hides the attempt.
        request = client.build_request("GET", server.url)
        request.url = httpx.URL(server.url + path)
        response = client.send(request)
    assert response.status_code == 404, (path, response.text)
    assert response.json() == {"error": "Not found."}


def test_file_swapped_for_a_symlink_after_indexing_is_404(
    server: Server, served_photos: Path, tmp_path: Path
) -> None:
    """A photo replaced by a link to a file outside the indexed folders is never served."""
    target = served_photos / "photo_01.png"
    with Store(server.index_dir) as store:
        state = store.photo_states()[str(target)]
        _, regions = store.photo_with_regions(state.id)
    outside = tmp_path / "private.png"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(outside)
    keep = tmp_path / "original.png"
    shutil.copy2(target, keep)
    with server.client() as client:
        assert client.get(f"{API}/photos/{state.id}/image").status_code == 200
        os.unlink(target)
        os.symlink(outside, target)
        try:
            for path in (
                f"/photos/{state.id}/image",
                f"/regions/{regions[-1].id}/thumb?size=48",
            ):
                response = client.get(API + path)
                assert response.status_code == 404 and response.json() == {"error": "Not found."}
            located = client.post(
                f"{API}/localize", data={"prompts": "a cat", "photo_id": str(state.id)}
            )
            assert located.status_code == 404
            os.unlink(target)
            os.symlink("/etc/hostname", target)
            assert client.get(f"{API}/photos/{state.id}/image").status_code == 404
            os.unlink(target)
            assert client.get(f"{API}/photos/{state.id}/image").status_code == 404  # vanished
        finally:
            if target.is_symlink() or target.exists():
                os.unlink(target)
            shutil.copy2(keep, target)
        assert client.get(f"{API}/photos/{state.id}/image").status_code == 200
