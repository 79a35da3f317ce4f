"""The ASGI app: JSON API under ``/api/v1``, the web page at ``/``.

Handlers are plain ``def`` functions, so FastAPI runs them in its thread pool and model
inference never blocks the event loop. Every failure a client can cause maps to a JSON
``{"error": "..."}`` with a 4xx status (a :class:`UsageError` is 400, naming the parameter);
the server's own trouble (an index or a model it cannot use) is logged and answered 503, and
anything unexpected is logged and answered with a bare 500; none reveals internals.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from fastapi import FastAPI, Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from indexer.errors import ModelLoadError, ObjsearchError, StoreError, UsageError
from indexer.models.clip import ClipEmbedder
from indexer.models.lifecycle import ModelChoice
from indexer.settings import DEFAULT_HOST
from retrieval.search.fields import rendered
from retrieval.serve import security
from retrieval.serve.browse import browse_router
from retrieval.serve.docs import add_docs
from retrieval.serve.headers import SecurityHeadersMiddleware
from retrieval.serve.hosts import HostAllowList
from retrieval.serve.hosts import allowed_hosts as hosts_allowed
from retrieval.serve.origin import SameOriginMiddleware
from retrieval.serve.params import HTTP_NAMES
from retrieval.serve.photos import NotIndexed
from retrieval.serve.responses import ERRORS, ErrorBody, LoginOk
from retrieval.serve.routes import api_router
from retrieval.serve.service import API, Service
from retrieval.serve.throttle import LoginThrottle

if TYPE_CHECKING:
    from retrieval.serve.watching import BackgroundWatcher

log = logging.getLogger("objsearch.serve")
STATIC = Path(__file__).with_name("static")
NOT_FOUND = "Not found."


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "body", "path"))
        parts.append(f"{where or 'request'}: {err.get('msg', 'invalid')}")
    return "Invalid parameters: " + "; ".join(parts)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(NotIndexed)
    async def not_indexed(_: Request, __: NotIndexed) -> JSONResponse:
        return _error(404, NOT_FOUND)

    @app.exception_handler(UsageError)  # a bad query (QueryError) or any other bad value
    async def bad_request(_: Request, exc: UsageError) -> JSONResponse:
        return _error(400, rendered(exc, HTTP_NAMES))  # a request's fields by their names here

    @app.exception_handler(StoreError)
    async def store_trouble(_: Request, exc: StoreError) -> JSONResponse:
        log.error("index problem: %s", exc)
        return _error(503, "The index cannot be read right now; see the server's log.")

    @app.exception_handler(ModelLoadError)
    async def model_trouble(_: Request, exc: ModelLoadError) -> JSONResponse:
        log.error("model problem: %s", exc)
        return _error(503, "The model cannot be loaded right now; see the server's log.")

    @app.exception_handler(ObjsearchError)  # the server's own trouble, not the client's
    async def other_error(_: Request, exc: ObjsearchError) -> JSONResponse:
        log.error("cannot answer: %s", exc)
        return _error(503, "objsearch cannot answer this right now; see the server's log.")

    @app.exception_handler(security.UploadTooLarge)
    async def too_large(_: Request, exc: security.UploadTooLarge) -> JSONResponse:
        return _error(413, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, _validation_message(exc))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        if isinstance(exc.__cause__, security.UploadTooLarge):  # raised inside form parsing
            return _error(413, str(exc.__cause__))
        if exc.status_code == 404:
            return _error(404, NOT_FOUND)
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def internal(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        return _error(500, "Internal server error.")


def _add_routes(app: FastAPI, token: str | None, throttle: LoginThrottle) -> None:
    """The web page and the login that gives it a cookie."""

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.post(
        f"{API}/login",
        summary="Exchange the token for a cookie (used by the web page)",
        response_model=LoginOk,
        responses={**ERRORS, 401: {"model": ErrorBody}, 429: {"model": ErrorBody}},  # type: ignore[dict-item]
    )
    async def login(
        request: Request, token_field: Annotated[str, Form(alias="token")]
    ) -> JSONResponse:
        address = request.client.host if request.client else None
        refusal = security.locked_out(throttle, address)
        if refusal is not None:
            return refusal
        if token is not None and not security.token_matches(token_field, token):
            await asyncio.sleep(throttle.failed(address))
            return _error(401, "Wrong token.")
        throttle.succeeded(address)
        response = JSONResponse({"ok": True})
        if token is not None:
            response.set_cookie(
                security.COOKIE_NAME,
                token_field,
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
                path="/",
            )
        return response


def _watcher(
    index_dir: str | os.PathLike[str],
    folders: Sequence[str | os.PathLike[str]],
    choice: ModelChoice,
) -> BackgroundWatcher | None:
    """The ``--watch`` thread (not started yet), its folders and index checked first."""
    if not folders:
        return None
    from indexer.indexing.watch import Watcher
    from retrieval.serve.watching import BackgroundWatcher

    return BackgroundWatcher(Watcher(index_dir, folders, **asdict(choice)))


def create_app(
    index_dir: str | os.PathLike[str],
    *,
    clip_model: str | None = None,
    device: str | None = None,
    precision: str | None = None,
    backend: str | None = None,
    embedder: ClipEmbedder | None = None,
    token: str | None = None,
    cors: str | None = None,
    max_upload: int = security.DEFAULT_MAX_UPLOAD,
    host: str = DEFAULT_HOST,
    allowed_hosts: Sequence[str] = (),
    login_throttle: LoginThrottle | None = None,
    watch: Sequence[str | os.PathLike[str]] = (),
) -> FastAPI:
    """The objsearch server as an ASGI app; CLIP loads here, once.

    ``embedder`` injects an already loaded model (tests, or apps that hold one); ``token``
    makes every API call require it; ``cors`` allows that one browser origin. Requests must
    name loopback, ``host`` (the bound address) or one of ``allowed_hosts`` in their Host
    header; ``login_throttle`` sets how wrong tokens are slowed and locked out. ``watch``
    names folders whose changes a background thread indexes while the server runs.
    """
    choice = ModelChoice(clip_model, device, precision, backend)
    watcher = _watcher(index_dir, watch, choice)
    service = Service(index_dir, choice, embedder)
    service.watcher = watcher.watcher if watcher else None

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        if watcher:
            watcher.start()
        yield
        if watcher:
            await watcher.stop()
        service.close()

    app = FastAPI(
        title="objsearch",
        version="1",
        summary="Search the objects inside your photos by text or by example.",
        lifespan=lifespan,
        docs_url=None,  # served by add_docs, without a CDN
        redoc_url=None,
    )
    app.state.service = service
    throttle = login_throttle or LoginThrottle()
    _install_error_handlers(app)
    _add_routes(app, token, throttle)
    app.include_router(api_router(service))
    app.include_router(browse_router(service))
    add_docs(app, STATIC)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    # Added innermost first: a request meets the headers, Host, CORS, origin, token and
    # size checks in that order, and only then a route.
    app.add_middleware(security.BodyLimitMiddleware, limit=max_upload)
    if token:
        app.add_middleware(security.TokenMiddleware, token=token, throttle=throttle)
    app.add_middleware(SameOriginMiddleware, cors=cors)
    if cors:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=[cors],
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization"],
        )
    app.add_middleware(HostAllowList, hosts=hosts_allowed(host, allowed_hosts))
    app.add_middleware(SecurityHeadersMiddleware)
    return app
