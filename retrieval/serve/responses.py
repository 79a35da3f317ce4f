"""The JSON API's response shapes, as pydantic models, so ``/docs`` documents every answer.

Each model mirrors a record the service already builds (a search result, a photo with its
regions, the index's health, a localisation): the routes declare them as their response
models and FastAPI checks every answer against them. Errors keep one shape,
:class:`ErrorBody`, whatever the status.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, Field

from indexer.store.doctor import Health

Box = list[float]


class ErrorBody(BaseModel):
    """Every error: one sentence for a person, never a traceback."""

    error: str


class LoginOk(BaseModel):
    ok: bool


class SearchHit(BaseModel):
    """One result: a photo (or crop, or line of text) with the region that matched."""

    rank: int
    score: float
    image: str
    kind: str = Field(description="object, image (the whole photo) or text (a line read).")
    box: Box | None
    label: str | None
    confidence: float | None
    region_id: int | None = Field(description="None for a line of text.")
    photo_id: int
    width: int
    height: int
    caption: str
    matches: int = Field(description="How many of the photo's regions were among the matches.")
    refined_box: Box | None
    refinement: str
    taken_at: str | None
    date_source: str | None
    camera: str | None
    gps: dict[str, float] | None
    text: str | None = Field(description="The words read, for a line of text.")
    thumb_url: str
    photo_url: str


class RegionInfo(BaseModel):
    region_id: int
    photo_id: int
    kind: str
    box: Box | None = Field(description="None for the whole photo.")
    label: str | None
    confidence: float | None
    thumb_url: str
    photo_url: str


class TextLine(BaseModel):
    kind: str
    box: Box
    text: str
    confidence: float | None


class PhotoInfo(BaseModel):
    photo_id: int
    image: str
    width: int
    height: int
    caption: str
    indexed_at: float = Field(description="When it was indexed (seconds since 1970).")
    image_url: str
    regions: list[RegionInfo]
    texts: list[TextLine]


class WatchStatus(BaseModel):
    """What ``serve --watch`` is doing (see ``indexer.indexing.watch``)."""

    folders: list[str]
    state: str
    done: int
    total: int
    pending: int
    last_batch_at: str | None
    last_error: str | None


@dataclass
class Status(Health):
    """The index's health, as ``objsearch status --json`` prints it, and the watcher's."""

    watch: WatchStatus | None = None


class FoundBox(BaseModel):
    box: Box
    confidence: float


class HeatGrid(BaseModel):
    cell: list[float] = Field(description="A cell's width and height in original pixels.")
    values: list[list[float]] = Field(description="Heat 0-1, row by row.")


class PromptFound(BaseModel):
    prompt: str
    boxes: list[FoundBox]
    grid: list[int]
    patch: int
    windows_scored: int
    heatmap: HeatGrid | None = None


class Localization(BaseModel):
    photo_id: int | None
    width: int
    height: int
    prompts: list[PromptFound]
    annotated_png_base64: str | None = None


ERRORS: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorBody, "description": what}
    for status, what in [
        (400, "The request cannot be used (the message says which parameter)."),
        (404, "Not found."),
        (422, "A parameter has the wrong type or range."),
        (503, "The index or the model cannot be used right now."),
    ]
}
