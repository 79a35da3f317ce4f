"""Ranking: candidate regions in, grouped and numbered results out.

Three rankings share the result rules (one result per photo showing its best region, or
one per region with ``group="object"``; ``matches`` counts a photo's regions among the
candidates): FAISS neighbours asked for in growing numbers, an exact ranking of a filtered
subset, and lines of text found by their words.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select

from indexer.store import Photo, Region, Store, TextRegion

from .fields import FieldError
from .filters import SearchFilters, photo_conditions
from .request import MAX_OFFSET, MAX_TOP_K, check_shape
from .results import Group, SearchResult, ranked
from .text_match import lines_matching, text_score, whole_words


@dataclass(frozen=True)
class Skip:
    """What a ranking leaves out: the example region or photo, and scores below a floor."""

    region: int | None
    photo: int | None
    min_score: float | None

    def excludes(self, region_id: int, photo_id: int) -> bool:
        return region_id == self.region or photo_id == self.photo


def rank_expanding(
    store: Store,
    search: Callable[[int], tuple[np.ndarray, np.ndarray]],
    total: int,
    top_k: int,
    kind: str | None,
    group: str,
    skip: Skip,
) -> list[SearchResult]:
    """Ask FAISS for more and more neighbours until ``top_k`` groups are filled.

    Every neighbour's kind and photo come from one plain read (:meth:`Store.region_owners`);
    full records are read for the ``top_k`` winners only.
    """
    k = min(total, top_k * 8 + 32)
    while True:
        scores, ids = search(k)
        hits = [(int(i), float(x)) for i, x in zip(ids[0], scores[0], strict=True) if i >= 0]
        low = skip.min_score is not None and hits and hits[-1][1] < skip.min_score
        owners = store.region_owners([i for i, _ in hits])
        best: dict[int, list] = {}  # photo (or region) id -> [score, region id, matches]
        for region_id, score in hits:
            if skip.min_score is not None and score < skip.min_score:
                break  # hits come best-first
            owner = owners.get(region_id)
            if owner is None:
                continue  # removed since the vectors were loaded
            region_kind, photo_id = owner
            if (kind and region_kind != kind) or skip.excludes(region_id, photo_id):
                continue
            key = region_id if group == "object" else photo_id
            if key in best:
                best[key][2] += 1  # hits come best-first: the first one stays
            else:
                best[key] = [score, region_id, 1]
        if len(best) >= top_k or k >= total or low:
            break
        k = min(total, k * 4)
    top = sorted(best.values(), key=lambda entry: -entry[0])[:top_k]
    rows = store.regions_with_photos([region_id for _, region_id, _ in top])
    return ranked([(*rows[i], score, n) for score, i, n in top if i in rows])


def rank_exact(
    store: Store,
    ids: np.ndarray,
    photos: np.ndarray,
    scores: np.ndarray,
    top_k: int,
    group: str,
    skip: Skip,
) -> list[SearchResult]:
    """Rank every allowed region exactly; group in numpy and load only the winners.

    ``matches`` counts a photo's regions among the best ``top_k * 8 + 32``, as the
    FAISS path counts them among its candidates.
    """
    keep = np.ones(len(ids), bool)
    if skip.region is not None:
        keep &= ids != skip.region
    if skip.photo is not None:
        keep &= photos != skip.photo
    if skip.min_score is not None:
        keep &= scores >= skip.min_score
    ids, photos, scores = ids[keep], photos[keep], scores[keep]
    order = np.argsort(-scores, kind="stable")
    if group == "object":
        chosen = order[:top_k]
        matches = np.ones(len(chosen), np.int64)
    else:
        _, first = np.unique(photos[order], return_index=True)
        chosen = order[np.sort(first)][:top_k]
        window = photos[order[: top_k * 8 + 32]]
        matches = np.array([max(1, int(np.sum(window == photos[i]))) for i in chosen])
    rows = store.regions_with_photos(ids[chosen].tolist())
    entries = []
    for i, n in zip(chosen, matches, strict=True):
        found = rows.get(int(ids[i]))
        if found is not None:  # removed since the vectors were loaded
            entries.append((*found, float(scores[i]), int(n)))
    return ranked(entries)


def rank_text_lines(
    store: Store, filters: SearchFilters, top_k: int = 10, group: Group = "photo"
) -> list[SearchResult]:
    """The lines of text read in photos that contain every word of ``filters.ocr``.

    Ranked whole words first, then confidence (see :mod:`.text_match`); one line per
    photo (its best, ``matches`` counting its matching lines) unless ``group="object"``.
    The other filters restrict the photos; ``labels`` keeps photos with such an object.
    """
    check_shape(top_k, None, group, most=MAX_OFFSET + MAX_TOP_K)
    if not filters.ocr:
        raise FieldError("ocr", "give at least one word to find in the photos' text.")
    words = filters.ocr.split()
    whole = whole_words(words).label("whole")
    chosen: dict[int, list] = {}  # photo (or line) id -> [line id, score, matching lines]
    window = top_k * 8 + 32  # as many candidates as a vector search weighs
    with store.session() as s:
        conds = photo_conditions(s, filters)
        if filters.labels:
            labelled = select(Region.photo_id).where(
                Region.label.collate("NOCASE").in_(filters.labels)
            )
            conds.append(Photo.id.in_(labelled))
        query = (
            select(TextRegion.id, TextRegion.photo_id, whole)
            .join(Photo, Photo.id == TextRegion.photo_id)
            .where(TextRegion.id.in_(lines_matching(words)), *conds)
            .order_by(whole.desc(), TextRegion.confidence.desc(), TextRegion.id)
        )
        for seen, (line_id, photo_id, alone) in enumerate(s.execute(query), 1):
            line_score = text_score(alone, len(words))
            if filters.min_score is not None and line_score < filters.min_score:
                break  # rows come best first
            key = line_id if group == "object" else photo_id
            if key in chosen:
                chosen[key][2] += 1
            elif len(chosen) < top_k:
                chosen[key] = [line_id, line_score, 1]
            if len(chosen) >= top_k and seen >= window:
                break
    lines = _text_lines(store, [line_id for line_id, _, _ in chosen.values()])
    return ranked([(*lines[i], sc, n) for i, sc, n in chosen.values() if i in lines])


def _text_lines(store: Store, ids: list[int]) -> dict[int, tuple[TextRegion, Photo]]:
    with store.session() as s:
        query = select(TextRegion, Photo).join(Photo).where(TextRegion.id.in_(ids))
        return {line.id: (line, photo) for line, photo in s.execute(query)}
