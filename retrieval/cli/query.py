"""Commands that query: search an index, localise prompts on one photo."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.markup import escape

from indexer.errors import QueryError
from indexer.settings import ENV_INDEX
from retrieval.search.compose import DEFAULT_IMAGE_WEIGHT, DEFAULT_NOT_WEIGHT

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

if TYPE_CHECKING:
    from indexer.models.clip import ClipEmbedder
    from retrieval.search import SearchFilters, SearchResult


@friendly
def search(
    query: Annotated[
        str | None, typer.Argument(help="Text query, e.g. 'a flowerpot'.", show_default=False)
    ] = None,
    index_dir: IndexDir = Path("."),
    image: Annotated[
        Path | None,
        typer.Option("--image", help="Search by example: a query photo (with QUERY: both)."),
    ] = None,
    top_k: Annotated[
        int, typer.Option("--top-k", "-k", help="Number of photos (or crops) to return.")
    ] = 10,
    objects_only: Annotated[
        bool, typer.Option("--objects-only", help="Match object crops only.")
    ] = False,
    photos_only: Annotated[
        bool, typer.Option("--photos-only", help="Match whole photos only.")
    ] = False,
    after: AfterOpt = None,
    before: BeforeOpt = None,
    folders: InOpt = None,
    labels: LabelOpt = None,
    camera: CameraOpt = None,
    near: NearOpt = None,
    min_score: Annotated[
        float | None,
        typer.Option(
            "--min-score", help="Drop results scoring below this cosine.", show_default=False
        ),
    ] = None,
    match: MatchOpt = None,
    ocr: Annotated[
        str | None,
        typer.Option(
            "--ocr",
            help="Words read in the photos (index with --ocr): alone, the lines of text that contain them; with QUERY, only photos whose text has them. Any case, accents folded, inside longer words too.",
            show_default=False,
        ),
    ] = None,
    negatives: Annotated[
        list[str] | None,
        typer.Option(
            "--not", help="Push results away from this prompt (repeatable).", show_default=False
        ),
    ] = None,
    not_weight: Annotated[
        float, typer.Option("--not-weight", help="How far each --not moves the query.")
    ] = DEFAULT_NOT_WEIGHT,
    image_weight: Annotated[
        float | None,
        typer.Option(
            "--image-weight",
            help=f"Weight of the example against QUERY (0-1). [default: {DEFAULT_IMAGE_WEIGHT}]",
            show_default=False,
        ),
    ] = None,
    like_region: Annotated[
        int | None,
        typer.Option(
            "--like-region", help="More like this region (a region_id).", show_default=False
        ),
    ] = None,
    like_photo: Annotated[
        int | None,
        typer.Option("--like-photo", help="More like this photo (a photo_id).", show_default=False),
    ] = None,
    group: Annotated[
        str, typer.Option("--group", help="photo: one row per photo; object: every matching crop.")
    ] = "photo",
    refine: Annotated[
        bool,
        typer.Option(
            "--refine", help="Refine the top results' boxes with CLIP sliding-window localization."
        ),
    ] = False,
    refine_top: Annotated[
        int, typer.Option("--refine-top", help="How many of the top results --refine localizes.")
    ] = 5,
    clip_model: ClipOpt = None,
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
    backend: BackendOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Search INDEX by text (QUERY), by example (--image, --like-region, --like-photo) or both."""
    preload = None
    text_only = query is None and image is None and like_region is None and like_photo is None
    if query is not None and image is None and like_region is None and like_photo is None:
        from retrieval.search.preload import preload_text_encoder

        # A text-only query: the text tower compiles on a second core while the rest of
        # the search (SQLAlchemy, FAISS) imports and loads.
        preload = preload_text_encoder(index_dir, clip_model, device, precision, backend)
    try:
        from retrieval.search import Searcher, SearchFilters

        # Every argument is checked before a model loads (that takes seconds).
        if top_k < 1:
            raise QueryError("--top-k must be at least 1.")
        if refine_top < 0:
            raise QueryError("--refine-top must be 0 or more.")
        if objects_only and photos_only:
            raise QueryError("--objects-only and --photos-only exclude each other.")
        has_example = image is not None or like_region is not None or like_photo is not None
        if query is None and not has_example and ocr is None:
            raise QueryError("Give a text QUERY, --image, --like-region, --like-photo or --ocr.")
        if image_weight is not None and not (query is not None and has_example):
            raise QueryError("--image-weight weighs an example against a text QUERY: give both.")
        if refine and query is None and image is None:
            raise QueryError("--refine localizes a text QUERY or an --image: give one.")
        if text_only and (objects_only or photos_only):
            raise QueryError(
                "--objects-only and --photos-only choose among objects and photos; an --ocr "
                "search without QUERY returns lines of text."
            )
        kind: Literal["object", "image"] | None = (
            "object" if objects_only else "image" if photos_only else None
        )
        if not text_only:
            Searcher.check_composed(query, image, negatives or (), like_region, like_photo)
        elif negatives:
            raise QueryError("--not pushes a QUERY away from a prompt: give a QUERY.")
        filters = SearchFilters(
            after=after,
            before=before,
            folders=folders,
            labels=labels,
            camera=camera,
            near=near,
            min_score=min_score,
            match=match,
            ocr=ocr,
        )
        example = Searcher.query_image(image) if image is not None else None
        with Searcher(
            index_dir,
            clip_model=clip_model,
            device=device,
            precision=precision,
            backend=backend,
            preload=preload,
            load_encoder=not text_only,  # finding words read in photos embeds nothing
        ) as searcher:
            results = searcher.search(
                text=query,
                image=example,
                top_k=top_k,
                kind=kind,
                filters=filters,
                negatives=negatives or (),
                not_weight=not_weight,
                image_weight=DEFAULT_IMAGE_WEIGHT if image_weight is None else image_weight,
                like_region=like_region,
                like_photo=like_photo,
                group=group,  # type: ignore[arg-type]
            )
            if not results and searcher.empty:
                err.print(
                    f"note: the index at {escape(searcher.store.dir)} holds no photos yet (an "
                    "index run may still be committing its first batch).",
                    highlight=False,
                    soft_wrap=True,
                )
            elif not results:
                _explain_empty(searcher, filters)
            if refine:
                from retrieval.localize.refine import refine_results

                refine_results(
                    searcher,
                    results,
                    text=query,
                    image=example if query is None else None,
                    top=refine_top,
                )
        if as_json:
            print(json.dumps([r.to_dict() for r in results], ensure_ascii=False))
            return
        if not results:
            err.print("No results.")
            return
        what = "crops" if group == "object" else "photos"
        if text_only:
            what = "lines of text" if group == "object" else "photos"
        title = (
            f"{len(results)} {what} for {query!r}"
            if query
            else f"{len(results)} {what} with the words {ocr!r}"
            if text_only
            else f"{len(results)} {what} like the example"
        )
        print_rows(title, *_result_rows(results, refined=refine))
    finally:
        if preload is not None:
            preload.result()  # never leave its thread running native code at exit


def _explain_empty(searcher: object, filters: object) -> None:
    """A note on stderr when filters left nothing (an empty result is not an error)."""
    from retrieval.search.filters import SearchFilters, photos_without_metadata

    assert isinstance(filters, SearchFilters)
    if filters.ocr:
        read = searcher.store.counts().read  # type: ignore[attr-defined]
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
        return
    if filters.restricts_rows:
        err.print("note: no photo matches the filters.", highlight=False)
    elif filters.min_score is not None:
        err.print(
            f"note: no result scores at least --min-score {filters.min_score}.", highlight=False
        )
    if filters.needs_metadata:
        with searcher.store.session() as s:  # type: ignore[attr-defined]
            missing = photos_without_metadata(s)
        if missing:
            err.print(
                f"note: {missing} photos were indexed before dates, cameras and places were "
                "recorded; run 'objsearch index' on their folders to read them (no model runs).",
                highlight=False,
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
    from indexer.models.converted import load_embedder
    from indexer.settings import resolve_device
    from indexer.store import Store

    model, key = clip_model, None
    if index_dir is not None:
        with Store(index_dir) as store:
            model = model or store.get_meta("clip_model")
            key = store.get_meta("int8_calibration")
    return load_embedder(
        model, resolve_device(device), precision=precision, backend=backend, calibration_key=key
    )
