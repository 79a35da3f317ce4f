"""The ASGI app: JSON API under ``/api/v1``, the web page at ``/``.

Handlers are plain ``def`` functions, so FastAPI runs them in its thread pool and model
inference never blocks the event loop. Every failure a client can cause maps to a JSON
``{"error": "..."}`` with a 4xx status; anything else is logged and answered with a bare
500 that reveals no internals.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from indexer.errors import ObjsearchError, QueryError, StoreError
from indexer.models.clip import ClipEmbedder
from indexer.settings import DEFAULT_DECODE_SIDE, DEFAULT_HOST
from retrieval.search import SearchFilters
from retrieval.search.compose import DEFAULT_IMAGE_WEIGHT
from retrieval.serve import security
from retrieval.serve.docs import add_docs
from retrieval.serve.headers import SecurityHeadersMiddleware
from retrieval.serve.hosts import HostAllowList
from retrieval.serve.hosts import allowed_hosts as hosts_allowed
from retrieval.serve.origin import SameOriginMiddleware
from retrieval.serve.params import Shaping, search_filters, shaping
from retrieval.serve.photos import NotIndexed
from retrieval.serve.service import API, THUMB_SIZE, Service, decode_image_or_400
from retrieval.serve.throttle import LoginThrottle

if TYPE_CHECKING:
    from retrieval.serve.watching import BackgroundWatcher

log = logging.getLogger("objsearch.serve")
STATIC = Path(__file__).with_name("static")
MAX_ID = 2**63 - 1
KindParam = Literal["object", "image", "both"]
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

    @app.exception_handler(QueryError)
    async def bad_query(_: Request, exc: QueryError) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(StoreError)
    async def store_trouble(_: Request, exc: StoreError) -> JSONResponse:
        log.error("index problem: %s", exc)
        return _error(503, "The index cannot be read right now; see the server's log.")

    @app.exception_handler(ObjsearchError)
    async def other_error(_: Request, exc: ObjsearchError) -> JSONResponse:
        return _error(400, str(exc))

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


def parse_id(raw: str) -> int:
    """A positive integer id, or 404: ids are opaque, anything else names nothing."""
    if not raw.isascii() or not raw.isdigit() or not 0 < int(raw) <= MAX_ID:
        raise NotIndexed(raw)
    return int(raw)


def _kind(kind: KindParam) -> Literal["object", "image"] | None:
    return None if kind == "both" else kind


def _upload_bytes(upload: UploadFile) -> bytes:
    data = upload.file.read()
    if not data:
        raise QueryError("The uploaded image is empty.")
    return data


def _jpeg(data: bytes) -> Response:
    return Response(
        data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"}
    )


KParam = Annotated[int, Query(ge=1, le=200, description="Number of photos to return.")]
KindQuery = Annotated[
    KindParam, Query(description="object: crops only; image: whole photos only; both.")
]
RefineParam = Annotated[bool, Query(description="Refine the top boxes with CLIP localization.")]
RefineTop = Annotated[int, Query(ge=1, le=20, description="How many results refine localizes.")]


def _add_routes(app: FastAPI, service: Service, token: str | None, throttle: LoginThrottle) -> None:
    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.post(f"{API}/login", summary="Exchange the token for a cookie (used by the web page)")
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

    @app.get(f"{API}/search", summary="Search by text (q), by words read in photos (ocr), or both")
    def search_text(
        q: Annotated[
            str | None, Query(description="Text query, e.g. 'a flowerpot'.", max_length=1000)
        ] = None,
        k: KParam = 10,
        kind: KindQuery = "both",
        refine: RefineParam = False,
        refine_top: RefineTop = 5,
        filters: Annotated[SearchFilters, Depends(search_filters)] = SearchFilters(),
        shape: Annotated[Shaping, Depends(shaping)] = Shaping(),
    ) -> list[dict[str, Any]]:
        return service.search(
            text=q,
            k=k,
            kind=_kind(kind),
            refine=refine,
            refine_top=refine_top,
            filters=filters,
            shape=shape,
        )

    @app.post(f"{API}/search", summary="Search by example: upload a photo in the field 'image'")
    def search_image(
        image: Annotated[UploadFile, File(description="The query photo.")],
        k: Annotated[int, Form(ge=1, le=200)] = 10,
        kind: Annotated[KindParam, Form()] = "both",
        refine: Annotated[bool, Form()] = False,
        refine_top: Annotated[int, Form(ge=1, le=20)] = 5,
        q: Annotated[
            str | None, Form(max_length=1000, description="Optional text to combine with it.")
        ] = None,
        image_weight: Annotated[float, Form(ge=0, le=1)] = DEFAULT_IMAGE_WEIGHT,
        filters: Annotated[SearchFilters, Depends(search_filters)] = SearchFilters(),
        shape: Annotated[Shaping, Depends(shaping)] = Shaping(),
    ) -> list[dict[str, Any]]:
        decoded = decode_image_or_400(_upload_bytes(image), DEFAULT_DECODE_SIDE)
        return service.search(
            text=q,
            image=decoded.image,
            k=k,
            kind=_kind(kind),
            refine=refine,
            refine_top=refine_top,
            filters=filters,
            shape=shape,
            image_weight=image_weight,
        )

    @app.get(f"{API}/regions/{{region_id}}/similar", summary="More like this object")
    def similar(
        region_id: str,
        k: KParam = 10,
        kind: KindQuery = "both",
        filters: Annotated[SearchFilters, Depends(search_filters)] = SearchFilters(),
        shape: Annotated[Shaping, Depends(shaping)] = Shaping(),
    ) -> list[dict[str, Any]]:
        return service.similar(parse_id(region_id), k, _kind(kind), filters=filters, shape=shape)

    @app.get(f"{API}/regions/{{region_id}}/thumb", summary="The region's crop as JPEG")
    def thumb(region_id: str, size: Annotated[int, Query(ge=16, le=1024)] = THUMB_SIZE) -> Response:
        return _jpeg(service.thumb_jpeg(parse_id(region_id), size))

    @app.get(f"{API}/photos/{{photo_id}}", summary="A photo's metadata, caption and regions")
    def photo(photo_id: str) -> dict[str, Any]:
        return service.photo_info(parse_id(photo_id))

    @app.get(f"{API}/photos/{{photo_id}}/image", summary="The photo, upright, as JPEG")
    def photo_image(
        photo_id: str, max_side: Annotated[int | None, Query(ge=16, le=8192)] = None
    ) -> Response:
        return _jpeg(service.photo_jpeg(parse_id(photo_id), max_side))

    @app.get(f"{API}/status", summary="What 'objsearch status --json' reports")
    def status() -> dict[str, Any]:
        return service.status()

    @app.post(f"{API}/localize", summary="Localize prompts on an indexed photo or an upload")
    def localize(
        prompts: Annotated[list[str], Form(description="One or more text prompts.")],
        photo_id: Annotated[str | None, Form()] = None,
        image: Annotated[UploadFile | None, File()] = None,
        threshold: Annotated[float, Form(gt=0, lt=1)] = 0.5,
        max_windows: Annotated[int, Form(ge=4, le=512)] = 128,
        annotate: Annotated[bool, Form()] = False,
    ) -> dict[str, Any]:
        return service.localize(
            prompts,
            photo_id=None if photo_id is None else parse_id(photo_id),
            upload=None if image is None else _upload_bytes(image),
            threshold=threshold,
            max_windows=max_windows,
            annotate=annotate,
        )


def _watcher(
    index_dir: str | os.PathLike[str],
    folders: Sequence[str | os.PathLike[str]],
    choices: dict[str, str | None],
) -> BackgroundWatcher | None:
    """The ``--watch`` thread (not started yet), its folders and index checked first."""
    if not folders:
        return None
    from indexer.indexing.watch import Watcher
    from retrieval.serve.watching import BackgroundWatcher

    return BackgroundWatcher(Watcher(index_dir, folders, **choices))  # type: ignore[arg-type]


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
    choices = dict(clip_model=clip_model, device=device, precision=precision, backend=backend)
    watcher = _watcher(index_dir, watch, choices)
    service = Service(index_dir, embedder=embedder, **choices)  # type: ignore[arg-type]
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
    _add_routes(app, service, token, throttle)
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
