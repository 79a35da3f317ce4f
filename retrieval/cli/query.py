"""Commands that query: search an index, localise prompts on one photo."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from indexer.errors import QueryError
from indexer.settings import ENV_INDEX
from retrieval.search.compose import DEFAULT_NOT_WEIGHT

from .app import (
    AfterOpt,
    BackendOpt,
    BeforeOpt,
    CameraOpt,
    ClipOpt,
    DeviceOpt,
    IndexDir,
    InOpt,
    JsonOpt,
    LabelOpt,
    MatchOpt,
    NearOpt,
    PrecisionOpt,
    check_output,
    err,
    fmt_box,
    friendly,
    print_rows,
    save_image,
)
from .search_options import (
    GroupOpt,
    ImageOpt,
    ImageWeightOpt,
    LikePhotoOpt,
    LikeRegionOpt,
    MinScoreOpt,
    NotOpt,
    NotWeightOpt,
    ObjectsOnlyOpt,
    OcrOpt,
    PhotosOnlyOpt,
    QueryArg,
    RefineOpt,
    RefineTopOpt,
    TopKOpt,
)

if TYPE_CHECKING:
    from indexer.models.clip import ClipEmbedder
    from retrieval.search import Searcher, SearchFilters, SearchRequest, SearchResult


@friendly
def search(
    query: QueryArg = None,
    index_dir: IndexDir = Path("."),
    image: ImageOpt = None,
    top_k: TopKOpt = 10,
    objects_only: ObjectsOnlyOpt = False,
    photos_only: PhotosOnlyOpt = False,
    after: AfterOpt = None,
    before: BeforeOpt = None,
    folders: InOpt = None,
    labels: LabelOpt = None,
    camera: CameraOpt = None,
    near: NearOpt = None,
    min_score: MinScoreOpt = None,
    match: MatchOpt = None,
    ocr: OcrOpt = None,
    negatives: NotOpt = None,
    not_weight: NotWeightOpt = DEFAULT_NOT_WEIGHT,
    image_weight: ImageWeightOpt = None,
    like_region: LikeRegionOpt = None,
    like_photo: LikePhotoOpt = None,
    group: GroupOpt = "photo",
    refine: RefineOpt = False,
    refine_top: RefineTopOpt = 5,
    clip_model: ClipOpt = None,
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
    backend: BackendOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Search INDEX by text (QUERY), by example (--image, --like-region, --like-photo) or both."""
    preload = None
    if query is not None and image is None and like_region is None and like_photo is None:
        from retrieval.search.preload import preload_text_encoder

        # A text-only query: the text tower compiles on a second core while the rest of
        # the search (SQLAlchemy, FAISS) imports and loads.
        preload = preload_text_encoder(index_dir, clip_model, device, precision, backend)
    try:
        from retrieval.localize.refine import search_refined
        from retrieval.search import Searcher, SearchFilters, SearchRequest

        if objects_only and photos_only:
            raise QueryError("--objects-only and --photos-only exclude each other.")
        # The request checks every argument (and reads --image) before a model loads.
        request = SearchRequest(
            query,
            image,
            like_region,
            like_photo,
            negatives=tuple(negatives or ()),
            not_weight=not_weight,
            image_weight=image_weight,
            filters=SearchFilters(
                after, before, folders, labels, camera, near, min_score, match, ocr
            ),
            kind="object" if objects_only else "image" if photos_only else None,
            group=group,  # type: ignore[arg-type]  # the request checks it
            top_k=top_k,
            refine=refine,
            refine_top=refine_top,
        )
        with Searcher(
            index_dir,
            clip_model=clip_model,
            device=device,
            precision=precision,
            backend=backend,
            preload=preload,
            load_encoder=not request.text_lines,  # finding words read in photos embeds nothing
        ) as searcher:
            results = search_refined(searcher, request)
            if not results:
                _explain_empty(searcher, request.filters)
        _print_results(results, request, as_json=as_json)
    finally:
        if preload is not None:
            preload.result()  # never leave its thread running native code at exit


def _print_results(
    results: Sequence[SearchResult], request: SearchRequest, *, as_json: bool
) -> None:
    """The results as JSON on stdout, or as a table (a note on stderr when there are none)."""
    if as_json:
        print(json.dumps([r.to_dict() for r in results], ensure_ascii=False))
        return
    if not results:
        err.print("No results.")
        return
    what = "crops" if request.group == "object" else "photos"
    if request.text_lines:
        what = "lines of text" if request.group == "object" else "photos"
    title = (
        f"{len(results)} {what} for {request.text!r}"
        if request.text
        else f"{len(results)} {what} with the words {request.filters.ocr!r}"
        if request.text_lines
        else f"{len(results)} {what} like the example"
    )
    print_rows(title, *_result_rows(results, refined=request.refine))


def _explain_empty(searcher: Searcher, filters: SearchFilters) -> None:
    """A note on stderr when nothing was found (an empty result is not an error)."""
    from retrieval.search.filters import photos_without_metadata

    if searcher.empty:
        err.print(
            f"note: the index at {escape(searcher.store.dir)} holds no photos yet (an "
            "index run may still be committing its first batch).",
            highlight=False,
            soft_wrap=True,
        )
        return
    if filters.ocr:
        _explain_no_text(searcher, filters)
        return
    if filters.restricts_rows:
        err.print("note: no photo matches the filters.", highlight=False)
    elif filters.min_score is not None:
        err.print(
            f"note: no result scores at least --min-score {filters.min_score}.", highlight=False
        )
    if filters.needs_metadata:
        with searcher.store.session() as s:
            missing = photos_without_metadata(s)
        if missing:
            err.print(
                f"note: {missing} photos were indexed before dates, cameras and places were "
                "recorded; run 'objsearch index' on their folders to read them (no model runs).",
                highlight=False,
            )


def _explain_no_text(searcher: Searcher, filters: SearchFilters) -> None:
    read = searcher.store.counts().read
    if not read:
        err.print(
            "note: no photo's text has been read in this index: run 'objsearch index "
            "FOLDERS --index INDEX --ocr' first.",
            highlight=False,
            soft_wrap=True,
        )
    else:
        err.print(
            f"note: no text read in the {read} photos read contains {filters.ocr!r}"
            + (" and matches the other filters." if _other_filters(filters) else "."),
            highlight=False,
            soft_wrap=True,
        )


def _other_filters(filters: SearchFilters) -> bool:
    from dataclasses import replace

    return bool(replace(filters, ocr=None).restricts_rows)


def _result_rows(
    results: Sequence[SearchResult], *, refined: bool
) -> tuple[list[str], list[list[str]]]:
    """Headers and plain-text rows of a result table (see :func:`.app.print_rows`)."""
    headers = ["#", "score", "photo", "box", "label", "taken"]
    headers += ["refined box"] if refined else []
    rows = []
    for r in results:
        row = [
            str(r.rank),
            f"{r.score:.3f}",
            r.image,
            fmt_box(r.box),
            f"text: {r.text}" if r.text is not None else r.label or "(photo)",
            (r.taken_at or "-")[:10],
        ]
        if refined:
            row.append(fmt_box(r.refined_box) if r.refined_box else r.refinement)
        rows.append(row)
    return headers, rows


PromptsOpt = Annotated[
    list[str],
    typer.Argument(
        help="One or more text prompts, e.g. 'a butterfly' 'a cat'.", show_default=False
    ),
]
OutputOpt = Annotated[
    Path | None,
    typer.Option(
        "--out", "-o", help="Write the photo with one coloured box set per prompt (PNG/JPEG)."
    ),
]
HeatmapOpt = Annotated[
    Path | None, typer.Option("--heatmap", help="Write a heat-map overlay image.")
]
IndexDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--index",
        "-i",
        envvar=ENV_INDEX,
        help="Use this index's CLIP model (optional).",
    ),
]
PatchOpt = Annotated[
    int | None,
    typer.Option(help="Patch side in pixels of the decoded photo. [default: from the photo size]"),
]
WindowOpt = Annotated[
    int | None,
    typer.Option(help="Window side in patches. [default: 3 for window, 2 for occlusion]"),
]


@friendly
def localize(
    photo: Annotated[Path, typer.Argument(help="The photo to search in.", show_default=False)],
    prompts: PromptsOpt,
    output: OutputOpt = None,
    heatmap: HeatmapOpt = None,
    index_dir: IndexDirOpt = None,
    method: Annotated[str, typer.Option(help="window (sliding window) or occlusion.")] = "window",
    patch: PatchOpt = None,
    window: WindowOpt = None,
    stride: Annotated[int, typer.Option(help="Window stride in patches.")] = 1,
    threshold: Annotated[float, typer.Option(help="Heat threshold (0-1) for boxes.")] = 0.5,
    max_windows: Annotated[int, typer.Option(help="Cap on crops scored per prompt.")] = 128,
    clip_model: ClipOpt = None,
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
    backend: BackendOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Localise PROMPTS on PHOTO with CLIP sliding windows (finds objects no detector class covers)."""
    from indexer.media.decode import DecodeError
    from retrieval.localize.refine import localize_prompts, read_localize_photo
    from retrieval.localize.render import draw_boxes, heatmap_overlay, prompt_colour

    # Every argument is checked before the model loads (that takes seconds).
    if method not in ("window", "occlusion"):
        raise QueryError(f"--method must be window or occlusion, not {method!r}.")
    prompts = [p for p in prompts if p.strip()]
    if not prompts:
        raise QueryError("Give at least one non-empty prompt.")
    output = check_output(output) if output is not None else None
    heatmap = check_output(heatmap) if heatmap is not None else None
    try:
        decoded = read_localize_photo(photo)
    except DecodeError as exc:
        raise QueryError(f"Cannot read {photo}: {exc}") from None
    embedder = _localize_embedder(clip_model, index_dir, device, precision, backend)
    try:
        image, found = localize_prompts(
            decoded,
            prompts,
            embedder,
            method=method,
            patch=patch,
            window=window,
            stride=stride,
            threshold=threshold,
            max_windows=max_windows,
        )
    except ValueError as exc:
        raise QueryError(str(exc)) from None
    colours = [prompt_colour(i) for i in range(len(found))]
    hex_colours = ["#{:02x}{:02x}{:02x}".format(*c) for c in colours]
    written = []
    if output is not None:
        save_image(draw_boxes(image, [(f.prompt, f.result.boxes) for f in found]), output)
        written.append(str(output))
    if heatmap is not None:
        labels = [f.prompt for f in found]
        save_image(
            heatmap_overlay(image, [f.result for f in found], colours, labels=labels), heatmap
        )
        written.append(str(heatmap))
    if as_json:
        entries = [{**f.to_dict(), "colour": c} for f, c in zip(found, hex_colours, strict=True)]
        print(json.dumps({"image": decoded.path, "prompts": entries}))
        return
    rows = []
    for f, colour in zip(found, hex_colours, strict=True):
        if not f.boxes:
            rows.append([f.prompt, colour, "no box above the threshold", "-"])
        for b in f.boxes:
            rows.append([f.prompt, colour, fmt_box(b.box), f"{b.confidence:.2f}"])
    print_rows(str(photo), ["prompt", "colour", "box (original pixels)", "confidence"], rows)
    for path in written:
        err.print(f"wrote {escape(path)}", highlight=False, soft_wrap=True)


def _localize_embedder(
    clip_model: str | None,
    index_dir: Path | None,
    device: str | None,
    precision: str | None,
    backend: str | None,
) -> ClipEmbedder:
    """CLIP for ``localize``: the given model, else the index's, else the default."""
    from indexer.models.lifecycle import ModelChoice
    from indexer.store import Store

    recorded = key = None
    if index_dir is not None:
        with Store(index_dir) as store:
            recorded = store.get_meta("clip_model")
            key = store.get_meta("int8_calibration")
    choice = ModelChoice(clip_model, device, precision, backend).with_model(recorded)
    return choice.embedder(calibration_key=key)
