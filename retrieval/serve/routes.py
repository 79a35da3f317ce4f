"""The JSON API's query and photo routes: search, more like this, photos, status, localize.

Handlers are plain ``def`` functions, so FastAPI runs them in its thread pool and model
inference never blocks the event loop. A search route turns its parameters into one
:class:`~retrieval.search.request.SearchRequest` (the same record the CLI builds), so both
check the same things with the same limits; every route declares its response model
(:mod:`.responses`) and its error shape.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from fastapi.responses import Response
from PIL import Image

from indexer.errors import QueryError
from indexer.settings import DEFAULT_DECODE_SIDE
from retrieval.search import SearchFilters, SearchRequest
from retrieval.search.request import MAX_REFINE_TOP, MAX_TOP_K
from retrieval.serve.params import Shaping, search_filters, shaping
from retrieval.serve.photos import NotIndexed
from retrieval.serve.responses import ERRORS, Localization, PhotoInfo, SearchHit, Status
from retrieval.serve.service import API, THUMB_SIZE, Service, decode_image_or_400

MAX_ID = 2**63 - 1
KindParam = Literal["object", "image", "both"]
KParam = Annotated[int, Query(ge=1, le=MAX_TOP_K, description="Number of results to return.")]
KindQuery = Annotated[
    KindParam, Query(description="object: crops only; image: whole photos only; both.")
]
RefineParam = Annotated[bool, Query(description="Refine the top boxes with CLIP localization.")]
RefineTop = Annotated[
    int, Query(ge=0, le=MAX_REFINE_TOP, description="How many results refine localizes.")
]
TextQuery = Annotated[
    str | None, Query(description="Text query, e.g. 'a flowerpot'.", max_length=1000)
]
Filters = Annotated[SearchFilters, Depends(search_filters)]
Shape = Annotated[Shaping, Depends(shaping)]
Hits = list[dict[str, Any]]


def parse_id(raw: str) -> int:
    """A positive integer id, or 404: ids are opaque, anything else names nothing."""
    if not raw.isascii() or not raw.isdigit() or not 0 < int(raw) <= MAX_ID:
        raise NotIndexed(raw)
    return int(raw)


def region_kind(kind: KindParam) -> Literal["object", "image"] | None:
    return None if kind == "both" else kind


def upload_bytes(upload: UploadFile) -> bytes:
    data = upload.file.read()
    if not data:
        raise QueryError("The uploaded image is empty.")
    return data


def jpeg(data: bytes) -> Response:
    return Response(
        data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"}
    )


def api_router(service: Service) -> APIRouter:
    """Every query and photo route, answering from ``service``."""
    router = APIRouter(prefix=API, tags=["search and photos"], responses=ERRORS)  # type: ignore[arg-type]
    _search_routes(router, service)
    _photo_routes(router, service)
    return router


def _search_routes(router: APIRouter, service: Service) -> None:
    hits: dict[str, Any] = {"response_model": list[SearchHit]}

    @router.get(
        "/search", summary="Search by text (q), words read in photos (ocr), or both", **hits
    )
    def search_text(
        q: TextQuery = None,
        k: KParam = 10,
        kind: KindQuery = "both",
        refine: RefineParam = False,
        refine_top: RefineTop = 5,
        filters: Filters = SearchFilters(),
        shape: Shape = Shaping(),
    ) -> Hits:
        return service.search(_request(q, None, None, filters, kind, k, refine, refine_top, shape))

    @router.post(
        "/search", summary="Search by example: upload a photo in the field 'image'", **hits
    )
    def search_image(
        image: Annotated[UploadFile, File(description="The query photo.")],
        k: Annotated[int, Form(ge=1, le=MAX_TOP_K)] = 10,
        kind: Annotated[KindParam, Form()] = "both",
        refine: Annotated[bool, Form()] = False,
        refine_top: Annotated[int, Form(ge=0, le=MAX_REFINE_TOP)] = 5,
        q: Annotated[
            str | None, Form(max_length=1000, description="Optional text to combine with it.")
        ] = None,
        image_weight: Annotated[
            float | None, Form(ge=0, le=1, description="The photo's weight against q (0.5).")
        ] = None,
        filters: Filters = SearchFilters(),
        shape: Shape = Shaping(),
    ) -> Hits:
        decoded = decode_image_or_400(upload_bytes(image), DEFAULT_DECODE_SIDE)
        request = _request(
            q, decoded.image, image_weight, filters, kind, k, refine, refine_top, shape
        )
        return service.search(request)

    @router.get("/regions/{region_id}/similar", summary="More like this object", **hits)
    def similar(
        region_id: str,
        k: KParam = 10,
        kind: KindQuery = "both",
        filters: Filters = SearchFilters(),
        shape: Shape = Shaping(),
    ) -> Hits:
        like = parse_id(region_id)
        page = dict(kind=region_kind(kind), top_k=k, **shape.fields())
        return service.similar(SearchRequest(like_region=like, filters=filters, **page))


def _request(
    text: str | None,
    image: Image.Image | None,
    image_weight: float | None,
    filters: SearchFilters,
    kind: KindParam,
    k: int,
    refine: bool,
    refine_top: int,
    shape: Shaping,
) -> SearchRequest:
    """The search request of a search route's parameters (checked as the CLI's are)."""
    return SearchRequest(
        text,
        image,
        image_weight=image_weight,
        filters=filters,
        kind=region_kind(kind),
        top_k=k,
        refine=refine,
        refine_top=refine_top,
        **shape.fields(),
    )


def _photo_routes(router: APIRouter, service: Service) -> None:
    @router.get(
        "/regions/{region_id}/thumb",
        summary="The region's crop as JPEG",
        response_class=Response,
        responses={200: {"content": {"image/jpeg": {}}}},
    )
    def thumb(region_id: str, size: Annotated[int, Query(ge=16, le=1024)] = THUMB_SIZE) -> Response:
        return jpeg(service.thumb_jpeg(parse_id(region_id), size))

    @router.get(
        "/photos/{photo_id}",
        summary="A photo's metadata, caption and regions",
        response_model=PhotoInfo,
    )
    def photo(photo_id: str) -> dict[str, Any]:
        return service.photo_info(parse_id(photo_id))

    @router.get(
        "/photos/{photo_id}/image",
        summary="The photo, upright, as JPEG",
        response_class=Response,
        responses={200: {"content": {"image/jpeg": {}}}},
    )
    def photo_image(
        photo_id: str, max_side: Annotated[int | None, Query(ge=16, le=8192)] = None
    ) -> Response:
        return jpeg(service.photo_jpeg(parse_id(photo_id), max_side))

    @router.get("/status", summary="What 'objsearch status --json' reports", response_model=Status)
    def status() -> dict[str, Any]:
        return service.status()

    @router.post(
        "/localize",
        summary="Localize prompts on an indexed photo or an upload",
        response_model=Localization,
        response_model_exclude_unset=True,
    )
    def localize(
        prompts: Annotated[list[str], Form(description="One or more text prompts.")],
        photo_id: Annotated[str | None, Form()] = None,
        image: Annotated[UploadFile | None, File()] = None,
        threshold: Annotated[float, Form(gt=0, lt=1)] = 0.5,
        max_windows: Annotated[int, Form(ge=4, le=512)] = 128,
        annotate: Annotated[bool, Form()] = False,
        heatmap: Annotated[bool, Form(description="Add each prompt's heat grid.")] = False,
    ) -> dict[str, Any]:
        return service.localize(
            prompts,
            photo_id=None if photo_id is None else parse_id(photo_id),
            upload=None if image is None else upload_bytes(image),
            threshold=threshold,
            max_windows=max_windows,
            annotate=annotate,
            heatmap=heatmap,
        )
