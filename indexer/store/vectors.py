"""The FAISS side of the store: a vector index whose ids are region row ids.

The index is always derived from SQLite (the source of truth) and can be rebuilt from it at
any time. Its ids are region ids (an ``IndexIDMap2``, or the lists' own ids in a compressed
index), so every hit maps to exactly one region.
The index type follows the store size: exact inner-product search while that stays fast,
HNSW above a threshold (graph search, sub-millisecond at a million vectors), compressed
IVF-PQ past a few million (:mod:`.ivf`), IVF-flat on request.
Files are written atomically (temp file, fsync, rename), so a crash never leaves half a file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from ..errors import UsageError
from . import ivf

INDEX_TYPES = ("auto", "flat", "hnsw", "ivf", "ivfpq")
# Temp files of unfinished saves: ``.vectors-XXXX.tmp`` beside the index file.
TEMP_PREFIX, TEMP_SUFFIX = ".vectors-", ".tmp"
T = TypeVar("T")


def _faiss() -> Any:
    """The FAISS module, imported on first use (a text search without vectors needs none).

    Typed as ``Any``: FAISS is SWIG bindings, and the stubs it ships miss classes and
    keyword arguments it has (``SearchParametersHNSW``, ``sel=``).
    """
    import faiss

    return faiss


# Exact search over 512-d float32 vectors costs about 1 ms per 10k vectors here
# (benchmarks/query_speed.py); from this size on a graph index answers in ~1 ms instead,
# and builds in seconds, so the end-to-end budget of 30 ms holds at any store size.
AUTO_HNSW_MIN = 50_000
# Up to this many deleted ids, an inverted-file search asks for as many more answers and
# drops them (see ``VectorIndex._drops_after``).
EXCLUDED_DROP_MAX = 10_000


@dataclass(frozen=True)
class IndexParams:
    """Approximate-index parameters, chosen from measured recall@10 (benchmarks/query_speed)."""

    hnsw_m: int = 32
    hnsw_ef_construction: int = 160
    hnsw_ef_search: int = 256
    ivf_nprobe: int = 128
    ivfpq_scan: float = ivf.SCAN_SHARE
    """Share of a compressed index's codes a search reads, nearest lists first."""
    ivfpq_scan_min: int = ivf.SCAN_MIN
    """Codes a compressed index's search reads at least (all of a smaller index)."""
    ivfpq_candidates: int = ivf.RERANK_CANDIDATES

    def scan_budget(self, count: int) -> int:
        """Codes a search of a ``count``-code compressed index reads."""
        return ivf.scan_budget(count, self.ivfpq_scan, self.ivfpq_scan_min)


def choose_index_type(index_type: str, count: int) -> str:
    """Resolve ``auto`` to a concrete index type for ``count`` vectors."""
    if index_type not in INDEX_TYPES:
        raise UsageError(
            f"Unknown FAISS index type {index_type!r}: use one of {', '.join(INDEX_TYPES)}."
        )
    if index_type != "auto":
        return index_type
    if count >= ivf.AUTO_IVFPQ_MIN:
        return "ivfpq"
    return "hnsw" if count >= AUTO_HNSW_MIN else "flat"


class VectorIndex:
    """A FAISS inner-product index on normalised vectors, by region id.

    An ``IndexIDMap2`` around flat, HNSW and IVF-flat indexes; a bare IVF-PQ index, whose
    lists store the region ids (:func:`.ivf.train_ivfpq`; older files in an id map still load).
    """

    def __init__(self, index: Any, index_type: str, params: IndexParams = IndexParams()) -> None:
        self.index = index  # a FAISS IndexIDMap2, or a bare IndexIVFPQ
        self._ids_cache: np.ndarray | None = None
        self._storage_cache: tuple[np.ndarray, np.ndarray | None, np.ndarray] | None = None
        self._sizes_cache: np.ndarray | None = None
        self._direct_map = False
        self.index_type = index_type
        self.params = params
        self.exact: ivf.ExactVectors | None = None
        """Exact vectors by region id, for re-ranking a compressed (``ivfpq``) index."""
        self.train_error: float | None = None
        """Held-out quantization error of freshly trained ``ivfpq`` quantizers (drift baseline)."""
        self._apply_search_params()

    # -- construction --------------------------------------------------------------------
    @classmethod
    def empty(
        cls, dim: int, index_type: str = "flat", params: IndexParams = IndexParams()
    ) -> VectorIndex:
        faiss = _faiss()

        if index_type == "hnsw":
            inner = faiss.IndexHNSWFlat(dim, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = params.hnsw_ef_construction
        elif index_type == "flat":
            inner = faiss.IndexFlatIP(dim)
        else:
            raise ValueError(f"an empty {index_type!r} index cannot be made without training data")
        return cls(faiss.IndexIDMap2(inner), index_type, params)

    @classmethod
    def build(
        cls,
        ids: np.ndarray,
        vectors: np.ndarray,
        dim: int,
        index_type: str = "auto",
        params: IndexParams = IndexParams(),
    ) -> VectorIndex:
        """Build an index of the right type for ``len(ids)`` vectors."""
        index_type = choose_index_type(index_type, len(ids))
        if index_type == "ivfpq" and len(ids) >= ivf.IVFPQ_MIN_VECTORS:
            rng = np.random.default_rng(0)
            pick = rng.choice(len(ids), ivf.sample_size(len(ids)), replace=False)
            out = cls(ivf.train_ivfpq(vectors[np.sort(pick)], dim, len(ids)), "ivfpq", params)
        elif index_type == "ivf" and len(ids) >= 256:
            out = cls(ivf.build_ivf_flat(vectors, dim), "ivf", params)
        else:  # an exact index, also for IVF types with too few vectors to train on
            out = cls.empty(dim, "hnsw" if index_type == "hnsw" else "flat", params)
        out.add(ids, vectors)
        return out

    def _apply_search_params(self) -> None:
        faiss = _faiss()

        inner = ivf.unwrapped(self.index)
        if isinstance(inner, faiss.IndexHNSW):
            inner.hnsw.efSearch = self.params.hnsw_ef_search
        elif isinstance(inner, faiss.IndexIVF):
            inner.nprobe = self.params.ivf_nprobe

    # -- updates -------------------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    @property
    def supports_remove(self) -> bool:
        return self.index_type == "flat"

    mapped = False
    """True when the vectors are memory-mapped from a file (read-only)."""

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        if self.mapped:
            raise NotImplementedError("a memory-mapped index cannot change; rebuild it")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), -1)
        self.index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))
        self._forget_layout()

    def remove(self, ids: np.ndarray) -> int:
        """Remove ids; only exact indexes support it (callers rebuild the others)."""
        faiss = _faiss()

        if len(ids) == 0:
            return 0
        if not self.supports_remove or self.mapped:
            raise NotImplementedError(
                f"a {self.index_type} index cannot remove vectors; rebuild it"
            )
        selector = faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64))
        removed = int(self.index.remove_ids(selector))
        self._forget_layout()
        return removed

    def _forget_layout(self) -> None:
        """Drop the cached id map and storage view (adds and removes move the rows)."""
        self._ids_cache = None
        self._storage_cache = None
        self._sizes_cache = None

    def ids(self) -> np.ndarray:
        return ivf.region_ids(self.index)

    # -- queries -------------------------------------------------------------------------
    def search(
        self,
        queries: np.ndarray,
        k: int,
        allowed: np.ndarray | None = None,
        excluded: Exclusion | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of shape (Q, k'); ids of -1 mark empty slots.

        ``allowed`` (region ids) restricts the search with a FAISS ``IDSelector``: exact for
        flat indexes, as approximate as an unfiltered search for graph and inverted-file
        ones when the allowed set is a large part of the index (use :meth:`scores_for` for
        small sets: graph search through a sparse filter loses recall). ``excluded`` leaves
        ids out instead: deleted regions that the file still holds. A compressed index
        re-ranks its candidates exactly (:func:`.ivf.rerank`).
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        k = max(1, min(int(k), self.ntotal))
        wide = k
        if self.index_type == "ivfpq":
            wide = min(self.ntotal, max(k, self.params.ivfpq_candidates))
        if excluded is not None and allowed is None and self._drops_after(excluded):
            more = min(self.ntotal, wide + len(excluded.ids))
            found = excluded.drop(self._search(queries, more, None, None), wide)
        else:
            selector = None if excluded is None else excluded.selector()
            found = self._search(queries, wide, allowed, selector)
        if self.index_type == "ivfpq":
            return ivf.rerank(found, queries, k, self.exact)
        return found

    def _drops_after(self, excluded: Exclusion) -> bool:
        """Whether excluded ids are dropped from a longer answer instead of skipped in FAISS.

        An inverted-file scan checks a selector for every code it reads (through the id
        map): at ten million regions and 700 deleted ones that doubled a query's time
        (21 -> 48 ms). Asking for as many more answers as there are such ids costs less, up
        to EXCLUDED_DROP_MAX; a graph search visits few vectors, so it keeps the selector.
        """
        return self.index_type in ("ivf", "ivfpq") and len(excluded.ids) <= EXCLUDED_DROP_MAX

    def _search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None, excluded: object | None
    ) -> tuple[np.ndarray, np.ndarray]:
        if self.ntotal == 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        alone = self._one_thread(len(queries))
        selector = excluded
        if allowed is not None:
            faiss = _faiss()

            selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
        if self.index_type == "ivfpq":
            return _single_threaded(alone, lambda: self._search_probes(queries, k, selector))
        if selector is None:
            return _single_threaded(alone, lambda: self.index.search(queries, k))
        params = self._selector_params(selector)
        return _single_threaded(alone, lambda: self.index.search(queries, k, params=params))

    def _search_probes(
        self, queries: np.ndarray, k: int, selector: object | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """A compressed index's search: each query reads its nearest lists up to the budget."""
        if self._sizes_cache is None:
            self._sizes_cache = ivf.list_sizes(self.index)
        quantizer = ivf.unwrapped(self.index).quantizer
        probes = ivf.plan_probes(quantizer, self._sizes_cache, queries, self._scan_budget)
        return ivf.search_probes(self.index, queries, k, probes, selector)

    @property
    def _scan_budget(self) -> int:
        return self.params.scan_budget(self.ntotal)

    def _one_thread(self, count: int) -> bool:
        """Whether a search of ``count`` queries runs on one FAISS thread.

        A single query does, unless it reads a compressed index's PARALLEL_SCAN_MIN codes or
        more: then its lists are split over the cores (FAISS ``parallel_mode`` 1). A batch
        runs its queries in parallel (``parallel_mode`` 0), whatever the search before it did.
        """
        split = False
        if self.index_type == "ivfpq":
            inner = ivf.unwrapped(self.index)
            split = count == 1 and min(self._scan_budget, self.ntotal) >= ivf.PARALLEL_SCAN_MIN
            inner.parallel_mode = 1 if split else 0
        return count == 1 and not split

    def _selector_params(self, selector: object) -> object:
        faiss = _faiss()

        if self.index_type == "hnsw":
            params = faiss.SearchParametersHNSW(sel=selector, efSearch=self.params.hnsw_ef_search)
        elif self.index_type == "ivf":
            params = faiss.SearchParametersIVF(sel=selector, nprobe=self.params.ivf_nprobe)
        else:
            params = faiss.SearchParameters(sel=selector)
        params.referenced_selector = selector  # keep it alive as long as the parameters
        return params

    def scores_for(self, query: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact (ids, scores) of ``query`` against the given region ids that are indexed.

        This is brute force over a subset: the cost follows the subset's size, not the
        index's, and the answer is exact whatever the index type.
        """
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(self.dim)
        if len(ids) == 0 or self.ntotal == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        if self.exact is not None:  # a compressed index: its codes are approximations
            found, vectors = self.exact(ids[np.isin(ids, self._id_array())])
            return found, _inner_products(vectors, np.arange(len(found)), query)
        storage = self._flat_storage()
        if storage is not None:
            id_map, order, rows = storage
            sorted_ids = id_map if order is None else id_map[order]
            pos = np.searchsorted(sorted_ids, ids).clip(0, len(sorted_ids) - 1)
            present = sorted_ids[pos] == ids
            pos, ids = pos[present], ids[present]
            return ids, _inner_products(rows, pos if order is None else order[pos], query)
        ids = ids[np.isin(ids, self._id_array())]
        vectors = self.index.reconstruct_batch(ids) if len(ids) else np.zeros((0, self.dim))
        return ids, _inner_products(vectors, np.arange(len(ids)), query)

    def _id_array(self) -> np.ndarray:
        cached = self._ids_cache
        if cached is None:
            cached = self.ids()
            self._ids_cache = cached
        return cached

    def _flat_storage(self) -> tuple[np.ndarray, np.ndarray | None, np.ndarray] | None:
        """(id map, sort order or None when sorted, the stored vectors) without copying.

        Flat and HNSW indexes keep every vector in one contiguous array; the id map gives
        each row's region id. IVF keeps vectors per list: None (reconstruct instead).
        """
        faiss = _faiss()

        inner = ivf.unwrapped(self.index)
        if isinstance(inner, faiss.IndexHNSW):
            inner = faiss.downcast_index(inner.storage)
        if not isinstance(inner, faiss.IndexFlat):
            if isinstance(inner, faiss.IndexIVF) and not self._direct_map:
                # lets reconstruct_batch find vectors: by position in an id map's lists,
                # by region id (a hash table) in a bare index's
                bare = not isinstance(self.index, faiss.IndexIDMap2)
                inner.set_direct_map_type(
                    faiss.DirectMap.Hashtable if bare else faiss.DirectMap.Array
                )
                self._direct_map = True
            return None
        cached = self._storage_cache
        if cached is not None:
            return cached
        id_map = self._id_array()
        order = None if np.all(id_map[1:] > id_map[:-1]) else np.argsort(id_map, kind="stable")
        rows = faiss.rev_swig_ptr(inner.get_xb(), inner.ntotal * self.dim)
        self._storage_cache = (id_map, order, rows.reshape(inner.ntotal, self.dim))
        return self._storage_cache

    # -- files ---------------------------------------------------------------------------
    def save(self, path: str) -> int:
        """Write atomically (temp file + fsync + rename); returns the file size."""
        return publish(self.write_temp(os.path.dirname(os.path.abspath(path))), path)

    def write_temp(self, folder: str) -> str:
        """Write the index to a fresh, fsynced temp file in ``folder``; returns its path.

        The slow half of a save, kept apart from :func:`publish` so that callers can hold
        a lock only for the rename.
        """
        faiss = _faiss()

        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=folder)
        os.close(fd)
        try:
            try:
                faiss.write_index(self.index, tmp)
            except RuntimeError as exc:  # FAISS reports failed writes (a full disk) this way
                raise _as_os_error(exc) from None
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        except BaseException:
            discard(tmp)
            raise
        return tmp

    @classmethod
    def load(
        cls, path: str, params: IndexParams = IndexParams(), *, mapped: bool = False
    ) -> VectorIndex:
        """Read an index file; raises ``RuntimeError``/``OSError`` if it is corrupt.

        ``mapped`` memory-maps the stored vectors read-only instead of reading them: a
        million vectors (2 GB) open in milliseconds, pages come in as searches touch them,
        and processes share them through the page cache. A mapped index cannot change.
        """
        faiss = _faiss()

        flags = faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY if mapped else 0
        if mapped and ivf.is_ivfpq_file(path):
            flags = ivf.mmap_flags()  # the inverted lists, mapped from the same file
        index = faiss.read_index(path, flags)  # owned, and already of its own class
        if not isinstance(index, faiss.IndexIDMap2 | faiss.IndexIVFPQ):
            raise RuntimeError("FAISS file does not map region ids")
        inner = ivf.unwrapped(index)
        if isinstance(inner, faiss.IndexHNSW):
            index_type = "hnsw"
        elif isinstance(inner, faiss.IndexIVFPQ):
            index_type = "ivfpq"
        elif isinstance(inner, faiss.IndexIVF):
            index_type = "ivf"
        else:
            index_type = "flat"
        if index_type == "ivfpq" and mapped:
            ivf.skip_prefetch(index)
        out = cls(index, index_type, params)
        out.mapped = mapped
        return out


class Exclusion:
    """Ids a search leaves out (a segment's tombstones): dropped from a longer answer, or
    skipped inside FAISS by a selector built on first use."""

    def __init__(self, ids: np.ndarray) -> None:
        self.ids = np.unique(np.asarray(ids, np.int64))
        self._selector: object | None = None

    def selector(self) -> object:
        """A FAISS selector of every id except these (kept alive with its inner set)."""
        if self._selector is None:
            faiss = _faiss()

            inner = faiss.IDSelectorBatch(np.ascontiguousarray(self.ids))
            selector = faiss.IDSelectorNot(inner)
            selector.referenced_inner = inner
            self._selector = selector
        return self._selector

    def drop(self, found: tuple[np.ndarray, np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best of each row of (scores, ids) that are not excluded; -1 pads."""
        scores, ids = found
        keep = ~np.isin(ids, self.ids)
        out_scores = np.full((len(ids), k), -np.inf, np.float32)
        out_ids = np.full((len(ids), k), -1, np.int64)
        for row in range(len(ids)):
            kept_ids = ids[row][keep[row]][:k]
            out_ids[row, : len(kept_ids)] = kept_ids
            out_scores[row, : len(kept_ids)] = scores[row][keep[row]][:k]
        return out_scores, out_ids


def publish(tmp: str, path: str) -> int:
    """Rename a finished temp file over ``path`` (atomic); returns the file size."""
    try:
        os.replace(tmp, path)
    except BaseException:
        discard(tmp)
        raise
    _fsync_dir(os.path.dirname(os.path.abspath(path)))
    return os.path.getsize(path)


def _as_os_error(exc: RuntimeError) -> OSError:
    """The ``OSError`` behind a FAISS write error, so callers handle one kind of failure."""
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else "write error"
    for code in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT):
        if os.strerror(code) in text:
            return OSError(code, os.strerror(code))
    return OSError(errno.EIO, f"cannot write the FAISS file ({text[-200:]})")


def discard(tmp: str) -> None:
    """Remove a temp file that will not be published (it may already be gone)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)


def _inner_products(rows: np.ndarray, positions: np.ndarray, query: np.ndarray) -> np.ndarray:
    """``rows[positions] @ query`` in cache-sized chunks, on one thread.

    Gathering a chunk that fits in cache and reducing it with einsum runs about twice as
    fast as one large gather plus a BLAS product, whose threads wait on busy cores.
    """
    out = np.empty(len(positions), np.float32)
    for start in range(0, len(positions), _CHUNK_ROWS):
        part = positions[start : start + _CHUNK_ROWS]
        out[start : start + len(part)] = ivf.one_thread_scores(rows[part], query)
    return out


_CHUNK_ROWS = 1024


def _single_threaded(enabled: bool, fn: Callable[[], T]) -> T:
    """Run ``fn`` with one FAISS thread when ``enabled``.

    A single query is too small to split: with several OpenMP threads it waits for every
    core, and one busy core (another process) turns a 1 ms search into 8 ms or more.
    """
    faiss = _faiss()

    if not enabled:
        return fn()
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        return fn()
    finally:
        faiss.omp_set_num_threads(before)


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
