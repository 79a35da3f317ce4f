"""Inverted-file indexes: trained once on a sample, then filled; IVF-flat and IVF-PQ.

IVF-PQ is the compressed index for stores too large to hold float32 vectors in memory: each
vector becomes a 128-byte product-quantization code in one of ``nlist`` inverted lists, and
the lists are memory-mapped from the FAISS file when it is loaded (FAISS ``IO_FLAG_MMAP``
reads them as ``OnDiskInvertedLists`` over the same file), so a process keeps only the
coarse quantizer and the PQ codebooks resident, plus the pages searches touch. The lists
hold region ids themselves, with no id map around the index (:func:`train_ivfpq`).
A search reads the lists nearest the query until they hold :data:`SCAN_SHARE` of the codes
(:func:`plan_probes`, :func:`search_probes`). PQ scores are approximate: the best
:data:`RERANK_CANDIDATES` are re-ranked with their exact vectors, read from SQLite
(:func:`rerank`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

# ``auto`` picks IVF-PQ from this many vectors on. Below it HNSW keeps full vectors in
# memory (2 KB each: 4 GB at two million) and answers in about a millisecond; from here
# on its memory and build time (856 s at one million on two cores) are the limit, while
# IVF-PQ keeps ~80 bytes a vector resident-on-disk and trains on a fixed-size sample.
AUTO_IVFPQ_MIN = 2_000_000
# Bytes per PQ code (sub-quantizers of 8 bits each): 512-d vectors split into 128 pieces of
# 4 dimensions. On 70k clustered 512-d vectors whose variance decays over the dimensions
# (as CLIP's does), re-ranking 300 candidates at nprobe 64 gave recall@10 of 0.964 with
# PQ64, 0.986 with PQ128, 0.986 with OPQ64 (a learnt rotation: 324 s to train against
# 253 s) and 0.986 with 8-bit scalar codes (512 bytes): PQ128 matches the best at a
# quarter of SQ8's disk and without a rotation stage (docs/scaling.md).
PQ_BYTES = 128
# Inverted lists of an IVF-PQ index, at most: ``nlist`` follows 4 sqrt(n) up to about a
# million vectors and stops here. Both training (sample x nlist) and adding (n x nlist) cost
# grow with it: assigning vectors to their lists ran at 26,000 a second with 4,096 lists and
# 8,200 with 12,649 (4 sqrt(10M)) on two cores, i.e. 6 against 20 minutes at ten million.
# A query then scans nprobe x n / nlist codes: 156,000 at ten million and nprobe 64, 58 ms
# on one core, the largest part of a query's time there (docs/scaling.md).
IVFPQ_NLIST_MAX = 4096
# Training sample: this many vectors per inverted list (FAISS warns below 39), capped, so
# that training costs the same at ten million as at one.
TRAIN_PER_LIST = 64
TRAIN_SAMPLE_MAX = 500_000
# Codes a search reads, as a share of the index: the lists nearest the query, in order, until
# they hold this share (at least SCAN_MIN codes). A fixed number of lists spends its scan
# unevenly, because lists near real queries are larger than average (queries come from
# where the data is dense): at ten million regions the nearest 192 of 4,096 lists held
# 822,000 codes on average, not 192 x 2,441 = 469,000. Read by codes, the lists holding the
# true top 10 were read for 0.976 of them at 703,000 codes, against 0.968 for 160 fixed
# lists (702,000 codes). 8 %: recall@10 0.956 at 44 ms p50 on two cores (192 fixed lists:
# 0.949 at 48.5 ms); 6 %: 0.942 at 36 ms; 10 %: 0.961 at 53 ms (benchmarks/big_store.py,
# docs/scaling.md).
SCAN_SHARE = 0.08
# Smaller indexes read at least this many codes: all of them up to it, and more than 8 % up
# to 1.25 million. Reading codes is cheap at that size, where the candidates cost the most:
# at one million regions 100,000 codes (10 %) gave recall@10 0.977 at 17.1 ms p50, against
# 0.967 at 16.7 ms for 8 % (80,000), on two cores; 0.973 over 600 queries (docs/scaling.md).
SCAN_MIN = 100_000
# Lists a search may need, as a multiple of the average-sized lists its share would fill
# (the quantizer ranks this many centroids): the nearest lists are usually the larger ones,
# and at ten million regions the most any query needed was 1.35 times.
PROBE_SPAN = 4
# Candidates taken from the codes for exact re-ranking. At ten million regions and 8 % of
# the codes: recall@10 0.925 / 0.956 / 0.971 with 500 / 1,000 / 2,000 candidates, at 37 /
# 43 / 52 ms p50 (the lists read held the true top 10 for 0.982).
RERANK_CANDIDATES = 1000
# A single query that reads at least this many codes has its lists split over the cores
# (FAISS ``parallel_mode`` 1); shorter scans stay on one thread, where waking a second
# thread costs more than the split saves. Two threads on two cores, 1M regions, 1,000
# candidates, 192 lists (82,000 codes): 23-29 -> 21-25 ms a search; 300 candidates at 64
# lists (31,000 codes): 7.4 -> 6.0 ms. (The threshold was 50,000 when short splits measured
# slow; OpenBLAS's threads, left spinning by the re-ranking product on the same cores, are
# a likely cause that :func:`one_thread_scores` removed.)
PARALLEL_SCAN_MIN = 10_000
# Fewer vectors than this get an exact index instead: too few to train a quantizer on, and
# searched exactly in well under a millisecond anyway (as IVF-flat below 256).
IVFPQ_MIN_VECTORS = 64

# Drift: ``doctor`` retrains the quantizers when the newest DRIFT_SAMPLE vectors quantize
# DRIFT_RATIO times worse (mean squared reconstruction error) than the vectors held out of
# training did. Measured on clustered 512-d vectors (3,000 trained): unseen vectors of the
# same clusters 1.00, half from new clusters 1.22, all from new clusters 1.40-1.43, the same
# clusters twice as spread 1.17.
DRIFT_SAMPLE = 2000
DRIFT_RATIO = 1.2

ExactVectors = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""Region ids -> (the ids found, their exact float32 vectors), e.g. read from SQLite."""


def _faiss() -> Any:
    """FAISS, imported on first use and typed ``Any`` (its stubs miss SWIG attributes)."""
    import faiss

    return faiss


def nlist_for(count: int) -> int:
    """Inverted lists for ``count`` vectors: about 4 sqrt(n), at least 39 vectors each."""
    nlist = int(max(16, min(65536, 4 * np.sqrt(max(count, 1)))))
    return max(1, min(nlist, count // 39))


def ivfpq_nlist(count: int) -> int:
    """Inverted lists of an IVF-PQ index over ``count`` vectors."""
    return min(nlist_for(count), IVFPQ_NLIST_MAX)


def sample_size(count: int) -> int:
    """How many vectors train the quantizers of a ``count``-vector IVF-PQ store."""
    return min(count, max(TRAIN_PER_LIST * ivfpq_nlist(count), 39 * 256), TRAIN_SAMPLE_MAX)


def _pq_bits(samples: int) -> int:
    """Bits per sub-quantizer: 8 (256 centroids) when the sample can train them, else fewer."""
    bits = 8
    while bits > 4 and samples < 39 * (1 << bits):
        bits -= 1
    return bits


def build_ivf_flat(vectors: np.ndarray, dim: int) -> Any:
    """An empty trained IVF-flat index (in an id map) for these vectors."""
    faiss = _faiss()

    nlist = nlist_for(len(vectors))
    inner = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(0)
    sample = vectors[rng.choice(len(vectors), min(len(vectors), nlist * 64), replace=False)]
    inner.train(np.ascontiguousarray(sample, dtype=np.float32))
    return faiss.IndexIDMap2(inner)


def train_ivfpq(sample: np.ndarray, dim: int, count: int) -> Any:
    """An empty IVF-PQ index trained on ``sample`` for a ``count``-vector store.

    Bare, not in an id map: its lists store each code's region id anyway, and an
    ``IndexIDMap2`` would add a second copy (80 MB at ten million regions, on disk and in
    memory) plus the reverse map FAISS rebuilds on every load (about 400 MB and 0.7 s).
    Files written before, inside an id map, still load and search (:func:`region_ids`).
    """
    faiss = _faiss()

    nlist = min(ivfpq_nlist(count), max(1, len(sample) // 39))
    pq_bytes = math.gcd(dim, PQ_BYTES)  # sub-vectors must split the dimension evenly
    quantizer = faiss.IndexFlatIP(dim)
    inner = faiss.IndexIVFPQ(
        quantizer, dim, nlist, pq_bytes, _pq_bits(len(sample)), faiss.METRIC_INNER_PRODUCT
    )
    inner.own_fields = True
    quantizer.this.disown()  # the IVF index frees it
    # The sample size is chosen above; FAISS need not warn about small ones.
    inner.cp.min_points_per_centroid = inner.pq.cp.min_points_per_centroid = 1
    inner.train(np.ascontiguousarray(sample, dtype=np.float32))
    return inner


def quantization_error(index: Any, vectors: np.ndarray) -> float:
    """Mean squared error of ``vectors`` rebuilt from their IVF-PQ codes (list + PQ code)."""
    inner = unwrapped(index)
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    back = inner.sa_decode(inner.sa_encode(x))
    return float(np.mean(np.sum((x - back) ** 2, axis=1)))


def train_with_holdout(sample: np.ndarray, dim: int, count: int) -> tuple[Any, float]:
    """Quantizers trained on all but a random tenth of ``sample`` (at most DRIFT_SAMPLE),
    and that tenth's quantization error: what vectors they never saw cost, the baseline
    against which ``doctor`` measures drift."""
    held = min(DRIFT_SAMPLE, len(sample) // 10)
    order = np.random.default_rng(1).permutation(len(sample))
    index = train_ivfpq(sample[np.sort(order[held:])], dim, count)
    baseline = sample[order[:held]] if held else sample
    return index, quantization_error(index, baseline)


def sample_parts(
    parts: Iterable[tuple[np.ndarray, np.ndarray]], count: int, size: int, seed: int = 0
) -> np.ndarray:
    """About ``size`` vectors drawn uniformly from streamed (ids, vectors) parts."""
    rng = np.random.default_rng(seed)
    share = min(1.0, size / max(count, 1))
    chosen = [vecs[rng.random(len(vecs)) < share] for _, vecs in parts]
    return np.concatenate(chosen) if chosen else np.zeros((0, 0), np.float32)


def fill(index: Any, parts: Iterator[tuple[np.ndarray, np.ndarray]]) -> Any:
    """Add streamed (ids, vectors) parts to a trained index; returns the index."""
    for ids, vecs in parts:
        index.add_with_ids(
            np.ascontiguousarray(vecs, dtype=np.float32), np.ascontiguousarray(ids, np.int64)
        )
    return index


def emptied(path: str, dim: int, count: int) -> Any | None:
    """The trained quantizers of the IVF-PQ file at ``path``, with no vectors, or None.

    Later rebuilds reuse them instead of training again, as long as the file's lists still
    suit the store: same dimension, and at least a quarter of the lists its size calls for
    (a store that grew 16-fold gets new ones).
    """
    faiss = _faiss()

    try:
        loaded = faiss.read_index(path, mmap_flags())
    except (RuntimeError, OSError):
        return None
    inner = unwrapped(loaded)
    if not isinstance(inner, faiss.IndexIVFPQ) or inner.d != dim:
        return None
    if inner.nlist * 4 < min(ivfpq_nlist(count), max(1, TRAIN_SAMPLE_MAX // 39)):
        return None
    lists = faiss.ArrayInvertedLists(inner.nlist, inner.code_size)
    lists.this.disown()  # the index frees it
    inner.replace_invlists(lists, True)
    inner.reset()
    return faiss.clone_index(inner)  # bare, also when read from an id-mapped file


def mmap_flags() -> int:
    """FAISS read flags that map an IVF file's inverted lists instead of reading them."""
    faiss = _faiss()

    return int(faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)


def is_ivfpq_file(path: str) -> bool:
    """True when ``path`` holds an IVF-PQ index, bare or id-mapped (read from its first bytes)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
    except OSError:
        return False
    return head[:4] == b"IwPQ" or (head[:4] == b"IxM2" and b"IwPQ" in head)


def scan_budget(count: int, share: float = SCAN_SHARE, least: int = SCAN_MIN) -> int:
    """Codes a search of a ``count``-code index reads: ``share`` of them, at least ``least``."""
    return max(least, math.ceil(share * count), 1)


def unwrapped(index: Any) -> Any:
    """The index itself, as its own FAISS class: the one inside an id map, or ``index``."""
    faiss = _faiss()

    return faiss.downcast_index(index.index if isinstance(index, faiss.IndexIDMap2) else index)


def region_ids(index: Any) -> np.ndarray:
    """Every region id an index holds: its id map's, or a bare IVF index's lists' own."""
    faiss = _faiss()

    if isinstance(index, faiss.IndexIDMap2):
        return faiss.vector_to_array(index.id_map).astype(np.int64)
    inner = unwrapped(index)
    lists = inner.invlists
    parts = [np.zeros(0, np.int64)]
    for number in range(inner.nlist):
        size = lists.list_size(number)
        if size:
            ids = lists.get_ids(number)
            parts.append(faiss.rev_swig_ptr(ids, size).copy())
            lists.release_ids(number, ids)
    return np.concatenate(parts)


def list_sizes(index: Any) -> np.ndarray:
    """Codes in each inverted list of a bare or id-mapped IVF index, in list order."""
    inner = unwrapped(index)
    lists = inner.invlists
    return np.fromiter((lists.list_size(i) for i in range(inner.nlist)), np.int64, inner.nlist)


def skip_prefetch(index: Any) -> None:
    """Stop FAISS from reading a mapped index's lists ahead on threads of its own.

    ``OnDiskInvertedLists`` starts up to 32 threads on every search to touch the lists it
    is about to scan. With the pages cached that only costs: 1 million regions, 192 lists,
    7.3 -> 4.0 ms a search; 10 million, 29.5 against 34 ms.
    """
    faiss = _faiss()

    lists = faiss.downcast_InvertedLists(unwrapped(index).invlists)
    if isinstance(lists, faiss.OnDiskInvertedLists):
        lists.prefetch_nthread = 0


@dataclass(frozen=True)
class Probes:
    """The inverted lists each query reads, nearest first, with their centroid scores;
    a row ends in -1 where the query needs fewer lists than the longest row."""

    lists: np.ndarray
    scores: np.ndarray


def plan_probes(quantizer: Any, sizes: np.ndarray, queries: np.ndarray, budget: int) -> Probes:
    """For each query, its nearest lists in order until they hold ``budget`` codes.

    ``sizes`` are the codes of each list: of one index, or summed over shards that share
    the quantizer, which then all read the same lists (:mod:`.shards`).
    """
    nlist = len(sizes)
    mean = max(float(sizes.mean()), 1.0) if nlist else 1.0
    width = int(min(nlist, max(1, math.ceil(PROBE_SPAN * budget / mean))))
    scores, lists = quantizer.search(np.ascontiguousarray(queries, np.float32), width)
    held = np.cumsum(sizes[np.maximum(lists, 0)], axis=1)
    counts = np.minimum((held < budget).sum(axis=1) + 1, width)
    used = int(counts.max()) if len(counts) else width
    lists, scores = lists[:, :used].copy(), scores[:, :used].copy()
    lists[np.arange(used)[None, :] >= counts[:, None]] = -1  # FAISS skips these
    return Probes(lists, scores)


def search_probes(
    index: Any, queries: np.ndarray, k: int, probes: Probes, selector: object | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(PQ scores, region ids) of the ``k`` best codes in each query's planned lists.

    ``index`` is a bare or id-mapped IVF index; ``selector`` (FAISS ``IDSelector`` over
    region ids) skips codes, translated to the positions an id map's lists store.
    """
    faiss = _faiss()

    queries = np.ascontiguousarray(queries, np.float32)
    if index.ntotal == 0 or not len(queries):
        return np.full((len(queries), k), -np.inf, np.float32), np.full((len(queries), k), -1)
    inner = unwrapped(index)
    lists = np.ascontiguousarray(probes.lists, np.int64)
    scores = np.ascontiguousarray(probes.scores, np.float32)
    params = faiss.SearchParametersIVF()
    params.nprobe = lists.shape[1]
    mapped = isinstance(index, faiss.IndexIDMap2)
    if selector is not None:
        translated = faiss.IDSelectorTranslated(index.id_map, selector) if mapped else selector
        params.sel = translated
        params.referenced = (translated, selector)  # alive as long as the parameters
    found_scores = np.empty((len(queries), k), np.float32)
    found = np.empty((len(queries), k), np.int64)
    ptr = faiss.swig_ptr
    inner.search_preassigned_c(
        len(queries),
        ptr(queries),
        k,
        ptr(lists),
        ptr(scores),
        ptr(found_scores),
        ptr(found),
        False,
        params,
    )
    if mapped:
        id_map = faiss.rev_swig_ptr(index.id_map.data(), index.id_map.size())
        hit = found >= 0
        found[hit] = id_map[found[hit]]
    return found_scores, found


def one_thread_scores(vectors: np.ndarray, query: np.ndarray) -> np.ndarray:
    """``vectors @ query`` without BLAS: einsum on the calling thread.

    A BLAS product wakes OpenBLAS's worker threads, which then spin for a while on the
    cores before they sleep; the next query's parallel FAISS scan shares those cores with
    them. At ten million regions that took the scan from about 40 to 70-80 ms a query.
    """
    if not len(vectors):
        return np.zeros(0, np.float32)
    return np.einsum("ij,j->i", vectors, np.asarray(query, vectors.dtype))


def rerank(
    candidates: tuple[np.ndarray, np.ndarray],
    queries: np.ndarray,
    k: int,
    exact: ExactVectors | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best candidates per query by exact inner product (best first, ties by id).

    Without an exact source the PQ scores stand (approximate); candidates the source no
    longer holds (deleted meanwhile) drop out. -1 marks empty slots.
    """
    scores, ids = candidates
    if exact is None:
        return scores[:, :k], ids[:, :k]
    out_scores = np.full((len(queries), k), -np.inf, np.float32)
    out_ids = np.full((len(queries), k), -1, np.int64)
    for row, query in enumerate(queries):
        found, vectors = exact(ids[row][ids[row] >= 0])
        exact_scores = one_thread_scores(vectors, query)
        order = np.lexsort((found, -exact_scores))[:k]
        out_scores[row, : len(order)] = exact_scores[order]
        out_ids[row, : len(order)] = found[order]
    return out_scores, out_ids
