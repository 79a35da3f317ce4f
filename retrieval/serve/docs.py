"""The API page at ``/docs``: Swagger UI served from this server, not from a CDN.

FastAPI's default page loads Swagger UI from a CDN and starts it with an inline script, so
it fails offline and under the page's Content-Security-Policy. The ``fastapi-offline``
package ships Swagger UI's files; they are served at ``/docs-assets`` and started by
``static/docs.js``.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

SWAGGER_UI = Path(fastapi_offline.__file__).with_name("static")
ASSETS_PATH = "/docs-assets"


def add_docs(app: FastAPI, static: Path) -> None:
    """Serve ``/docs`` (the page) and ``/docs-assets`` (Swagger UI's script and style)."""

    @app.get("/docs", include_in_schema=False)
    def docs() -> FileResponse:
        return FileResponse(static / "docs.html")

    app.mount(ASSETS_PATH, StaticFiles(directory=SWAGGER_UI), name="docs-assets")
