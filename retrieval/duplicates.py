"""Duplicate photos: exact copies (same bytes) and near copies (resized, recompressed, edited).

Exact duplicates share a content hash. Near duplicates have whole-photo CLIP vectors whose
cosine is at least the threshold; FAISS range search finds those pairs without comparing
every photo with every other one (exact search for small stores, an inverted-file index
probed around each photo above that, so the cost grows close to linearly). Pairs are joined
into groups (a copy of a copy is in its original's group). Each group suggests one photo to
keep, the one with the most pixels, and nothing is ever deleted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import numpy as np
from sqlalchemy import select

from indexer.settings import DEFAULT_DUPLICATE_THRESHOLD
from indexer.store import KIND_IMAGE, Photo, Region, Store, decode_vector
from retrieval.search.fields import FieldError

DEFAULT_THRESHOLD = DEFAULT_DUPLICATE_THRESHOLD
EXACT_SEARCH_MAX = 20_000  # photos; above this, range search runs on an IVF index
_CHUNK = 2048


@dataclass
class DuplicatePhoto:
    """One member of a group; ``similarity`` is its cosine to the photo to keep."""

    photo_id: int
    path: str
    size: int
    width: int
    height: int
    similarity: float
    keep: bool = False

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass
class DuplicateGroup:
    """Photos that are copies of each other: ``kind`` is ``exact`` when all bytes agree."""

    kind: str
    photos: list[DuplicatePhoto] = field(default_factory=list)

    @property
    def keep(self) -> DuplicatePhoto:
        return next(p for p in self.photos if p.keep)

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "keep": self.keep.path,
            "photos": [{**asdict(p), "pixels": p.pixels} for p in self.photos],
        }


class _Groups:
    """Union-find over photo row positions."""

    def __init__(self, n: int) -> None:
        self.parent = np.arange(n)

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:
            self.parent[i], i = root, self.parent[i]
        return int(root)

    def join(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def similar_pairs(vectors: np.ndarray, threshold: float) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(i, j) position pairs, i < j, whose vectors' inner product is >= ``threshold``."""
    import faiss

    n, dim = vectors.shape
    if n < 2:
        return
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    index: faiss.Index
    if n <= EXACT_SEARCH_MAX:
        index = faiss.IndexFlatIP(dim)
    else:
        nlist = int(4 * np.sqrt(n))
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(0)
        sample = vectors[rng.choice(n, min(n, 40 * nlist), replace=False)]
        ivf.cp.niter = 10
        ivf.train(sample)
        ivf.nprobe = 8  # copies sit next to each other: a few neighbouring lists suffice
        index = ivf
    index.add(vectors)
    for start in range(0, n, _CHUNK):
        lims, _, found = index.range_search(vectors[start : start + _CHUNK], float(threshold))
        rows = np.repeat(np.arange(start, start + len(lims) - 1), np.diff(lims).astype(np.int64))
        keep = found > rows
        yield rows[keep], found[keep]


def find_duplicates(store: Store, threshold: float = DEFAULT_THRESHOLD) -> list[DuplicateGroup]:
    """Groups of duplicate photos in ``store``, largest groups first."""
    if not 0.0 < threshold <= 1.0:
        raise FieldError("threshold", f"must be above 0 and at most 1, not {threshold}.")
    with store.session() as s:
        photos = s.execute(
            select(
                Photo.id, Photo.path, Photo.size, Photo.width, Photo.height, Photo.content_hash
            ).order_by(Photo.id)
        ).all()
        vector_rows = s.execute(
            select(Region.photo_id, Region.vector)
            .where(Region.kind == KIND_IMAGE)
            .order_by(Region.photo_id)
        ).all()
    position = {row[0]: i for i, row in enumerate(photos)}
    groups = _Groups(len(photos))
    by_hash: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(photos):
        by_hash[row[5]].append(i)
    for same_hash in by_hash.values():
        for other in same_hash[1:]:
            groups.join(same_hash[0], other)
    dim = store.dim() or (len(vector_rows[0][1]) // 4 if vector_rows else 0)
    vectors = np.zeros((len(photos), max(dim, 1)), np.float32)
    has_vector = np.zeros(len(photos), bool)
    for photo_id, blob in vector_rows:
        at = position.get(photo_id)
        if at is not None:
            vectors[at] = decode_vector(blob, dim)
            has_vector[at] = True
    with_vectors = np.flatnonzero(has_vector)
    for pairs, found in similar_pairs(vectors[with_vectors], threshold):
        for a, b in zip(with_vectors[pairs], with_vectors[found], strict=True):
            groups.join(int(a), int(b))
    members: dict[int, list[int]] = defaultdict(list)
    for i in range(len(photos)):
        members[groups.find(i)].append(i)
    out = []
    for rows in members.values():
        if len(rows) < 2:
            continue
        keep = max(rows, key=lambda i: (photos[i][3] * photos[i][4], photos[i][2], -i))
        exact = len({photos[i][5] for i in rows}) == 1
        group = DuplicateGroup("exact" if exact else "near")
        for i in sorted(rows, key=lambda i: (i != keep, photos[i][1])):
            pid, path, size, width, height, _ = photos[i]
            sim = 1.0 if exact else float(vectors[i] @ vectors[keep])
            group.photos.append(
                DuplicatePhoto(pid, path, size, width, height, round(sim, 4), keep=i == keep)
            )
        out.append(group)
    out.sort(key=lambda g: (-len(g.photos), g.photos[0].path))
    return out
