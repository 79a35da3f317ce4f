"""What a page in the user's own browser can do to the server: DNS rebinding (Host),
cross-site POSTs (Origin) and the protective headers, against a real server process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from retrieval.serve.headers import DOCS_CSP, PAGE_CSP
from tests.fixtures.server import API, Server, photo_ids, run_server

PROXY_NAME = "photos.example.test"
CORS_ORIGIN = "http://app.example.test"
FOREIGN = "evil.example.com"


@pytest.fixture(scope="module")
def guarded(served_index: Path, models) -> Iterator[Server]:
    """A server as behind a reverse proxy: one extra name, one CORS origin."""
    with run_server(
        served_index, models.clip_dir, "--allowed-host", PROXY_NAME, "--cors", CORS_ORIGIN
    ) as server:
        yield server


@pytest.fixture(scope="module")
def photo_id(guarded: Server, served_photos: Path) -> int:
    return photo_ids(guarded.index_dir)[str(served_photos / "photo_00.jpg")]


def routes(photo_id: int) -> list[tuple[str, str]]:
    return [
        ("GET", "/"),
        ("GET", f"{API}/status"),
        ("GET", f"{API}/search?q=a+cat"),
        ("GET", f"{API}/photos/{photo_id}"),
        ("GET", f"{API}/photos/{photo_id}/image"),
        ("GET", "/docs"),
        ("GET", "/openapi.json"),
        ("GET", "/static/app.js"),
        ("GET", "/docs-assets/swagger-ui.css"),
        ("GET", "/no/such/page"),
        ("POST", f"{API}/search"),
        ("POST", f"{API}/login"),
    ]


def _upload(path: Path) -> dict:
    return {"files": {"image": ("q.jpg", path.read_bytes(), "image/jpeg")}, "data": {"k": "2"}}


@pytest.mark.parametrize(
    "host", [FOREIGN, f"{FOREIGN}:8765", "127.0.0.1.evil.example.com", "localhost.", "[::2]", ""]
)
def test_a_foreign_host_is_refused_on_every_route(
    guarded: Server, photo_id: int, host: str
) -> None:
    with guarded.client(headers={"Host": host}) as client:
        for method, path in routes(photo_id):
            response = client.request(method, path)
            assert response.status_code == 400, (host, method, path, response.text)
            assert response.headers["content-type"] == "application/json"
            assert "--allowed-host" in response.json()["error"]
            assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "host", ["localhost", "127.0.0.1", "[::1]", PROXY_NAME, "PHOTOS.example.test"]
)
def test_allowed_hosts_with_and_without_port(guarded: Server, host: str) -> None:
    port = guarded.url.rsplit(":", 1)[1]
    for value in (host, f"{host}:{port}"):
        with guarded.client(headers={"Host": value}) as client:
            assert client.get(f"{API}/status").status_code == 200, value
            assert client.get("/docs").status_code == 200, value


def test_a_cross_origin_post_is_refused(guarded: Server, served_photos: Path) -> None:
    photo = served_photos / "photo_00.jpg"
    refused = (
        {"Origin": f"http://{FOREIGN}"},
        {"Origin": "null"},  # a sandboxed frame or a local file
        {"Origin": guarded.url.replace("http:", "https:")},  # same host, other scheme
        {"Referer": f"http://{FOREIGN}/page.html"},
    )
    with guarded.client() as client:
        for headers in refused:
            search = client.post(f"{API}/search", headers=headers, **_upload(photo))
            assert search.status_code == 403, (headers, search.text)
            assert "Cross-site request refused" in search.json()["error"]
            login = client.post(f"{API}/login", headers=headers, data={"token": "x"})
            assert login.status_code == 403
            located = client.post(
                f"{API}/localize", headers=headers, data={"prompts": "a cat", "photo_id": "1"}
            )
            assert located.status_code == 403
        # Reading stays possible: the browser itself keeps a foreign page from the answer.
        assert client.get(f"{API}/status", headers=refused[0]).status_code == 200


def test_same_origin_cors_origin_and_non_browser_posts_work(
    guarded: Server, served_photos: Path
) -> None:
    photo = served_photos / "photo_00.jpg"
    allowed = (
        {},  # curl, scripts: no Origin
        {"Origin": guarded.url},
        {"Origin": guarded.url.replace("127.0.0.1", "localhost"), "Host": "localhost:"
         + guarded.url.rsplit(":", 1)[1]},
        {"Referer": f"{guarded.url}/"},
        {"Origin": CORS_ORIGIN},
        # Behind a TLS reverse proxy on this machine: the proxy passes Host and the scheme.
        {"Origin": f"https://{PROXY_NAME}", "Host": PROXY_NAME, "X-Forwarded-Proto": "https"},
    )  # fmt: skip
    with guarded.client() as client:
        for headers in allowed:
            response = client.post(f"{API}/search", headers=headers, **_upload(photo))
            assert response.status_code == 200, (headers, response.text)
            assert response.json()[0]["image"] == str(photo)
    cors = guarded.client().post(f"{API}/search", headers={"Origin": CORS_ORIGIN}, **_upload(photo))
    assert cors.headers["access-control-allow-origin"] == CORS_ORIGIN


def test_security_headers_on_page_api_images_and_errors(guarded: Server, photo_id: int) -> None:
    with guarded.client() as client:
        hit = client.get(f"{API}/search", params={"q": "a cat", "kind": "object"}).json()[0]
        responses = {
            "page": client.get("/"),
            "api": client.get(f"{API}/photos/{photo_id}"),
            "photo": client.get(f"{API}/photos/{photo_id}/image"),
            "thumb": client.get(hit["thumb_url"]),
            "script": client.get("/static/app.js"),
            "not found": client.get(f"{API}/photos/999999"),
            "invalid": client.get(f"{API}/search"),
            "refused": client.post(f"{API}/login", headers={"Origin": "http://x.test"}),
        }
        docs = client.get("/docs")
    for name, response in responses.items():
        assert response.headers["x-content-type-options"] == "nosniff", name
        assert response.headers["referrer-policy"] == "no-referrer", name
        assert response.headers["x-frame-options"] == "DENY", name
        assert response.headers["content-security-policy"] == PAGE_CSP, name
    assert "default-src 'self'" in PAGE_CSP and "frame-ancestors 'none'" in PAGE_CSP
    assert "unsafe-inline" not in PAGE_CSP and "unsafe-eval" not in PAGE_CSP
    assert responses["photo"].headers["content-type"] == "image/jpeg"
    assert docs.headers["content-security-policy"] == DOCS_CSP
    assert DOCS_CSP.replace("img-src 'self' data:; ", "") == PAGE_CSP  # icons only


def test_page_and_docs_have_no_inline_script_or_style(guarded: Server) -> None:
    with guarded.client() as client:
        for path in ("/", "/docs"):
            html = client.get(path).text
            assert "<script>" not in html and "style=" not in html and "<style" not in html
            assert "cdn" not in html.lower()  # everything comes from this server
            for asset in ("/static/app.js", "/static/style.css", "/static/docs.js",
                          "/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css"):  # fmt: skip
                if asset in html:
                    assert client.get(asset).status_code == 200, asset
