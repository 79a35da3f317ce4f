"""What --ocr costs at index time, and how fast words are found (``python benchmarks/ocr_speed.py``).

Two tables (markdown on stdout, progress on stderr):

* ``--indexing``: objects-mode runs (real YOLO11n, a random ViT-B/32 CLIP: the cost of the
  real one) over COCO photos, with and without ``--ocr``, on plain photos and on the same
  photos with a word rendered on each. The rate is marginal: (time for N2 photos - time for
  N1 photos) / (N2 - N1), models loaded once beforehand, so start-up costs cancel out.
  Target: ``--ocr`` adds at most 50 % to an objects-mode run on ordinary photos.
* ``--fts``: ``search --ocr WORD`` (:meth:`Searcher.search_text`) on a store of 1,000,000
  synthetic lines of text (Zipf-distributed pseudo-words; built once into
  ``benchmarks/results/.ocr-1m``), whole words and parts of words, p50 and p95.
  Target: p50 <= 50 ms.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from _common import (
    DEFAULT_DETECTOR,
    DEFAULT_PHOTOS,
    RESULTS_DIR,
    ensure_clip_model,
    log,
    markdown_table,
    percentile,
    setup_environment,
)

setup_environment()

FTS_DIR = RESULTS_DIR / ".ocr-1m"


def _marginal(run, small: int, large: int) -> float:
    """Seconds per photo between ``small`` and ``large`` photos (each run from scratch)."""
    return (run(large) - run(small)) / (large - small)


def indexing_rows(photos: Sequence[Path], small: int, large: int, rounds: int) -> list[list[str]]:
    from indexer.indexing import Indexer
    from indexer.models import ClipEmbedder, Detector
    from indexer.models.ocr import TextReader
    from tests.fixtures.rendered_text import render_set

    clip = ensure_clip_model(None)
    embedder = ClipEmbedder(clip, "cpu")
    detector = Detector(str(DEFAULT_DETECTOR), "cpu")
    reader = TextReader().load()
    work = Path(tempfile.mkdtemp(prefix="ocr-speed-"))
    try:
        sets = {"plain COCO photos": work / "plain", "with a rendered word each": work / "text"}
        sets["plain COCO photos"].mkdir()
        for p in photos[:large]:
            shutil.copy(p, sets["plain COCO photos"] / p.name)
        render_set(photos[:large], sets["with a rendered word each"], [32], seed=5)
        rows = []
        for what, folder in sets.items():
            files = sorted(folder.iterdir())
            per_photo: dict[bool, list[float]] = {False: [], True: []}
            for _ in range(rounds):
                for ocr in (False, True):  # interleaved: load drifts hit both alike

                    def run(n: int, ocr: bool = ocr, files: list[Path] = files) -> float:
                        sub = work / f"run-{n}"
                        shutil.rmtree(sub, ignore_errors=True)
                        sub.mkdir()
                        for f in files[:n]:
                            os.link(f, sub / f.name)
                        index = work / f"index-{n}"
                        shutil.rmtree(index, ignore_errors=True)
                        indexer = Indexer(
                            index,
                            clip_model=clip,
                            device="cpu",
                            embedder=embedder,
                            detector=detector,
                            ocr=ocr,
                            text_reader=reader,
                        )
                        t = time.perf_counter()
                        indexer.index([sub])
                        return time.perf_counter() - t

                    per_photo[ocr].append(_marginal(run, small, large))
                    log(f"{what}, ocr={ocr}: {per_photo[ocr][-1]:.3f} s/photo")
            base, with_ocr = min(per_photo[False]), min(per_photo[True])
            rows.append(
                [
                    what,
                    f"{base:.3f}",
                    f"{with_ocr:.3f}",
                    f"{with_ocr - base:.3f}",
                    f"{(with_ocr - base) / base:+.0%}",
                    "≤ +50 %" if what.startswith("plain") else "(reported)",
                    f"{os.getloadavg()[0]:.1f}",
                ]
            )
        return rows
    finally:
        shutil.rmtree(work, ignore_errors=True)


ONSETS = (
    "b",
    "c",
    "d",
    "f",
    "g",
    "h",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "t",
    "v",
    "w",
    "st",
    "tr",
)
VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "ou")
CODAS = ("", "", "n", "r", "s", "t", "l", "ck", "nd", "ng")


def vocabulary(size: int, rng: random.Random) -> list[str]:
    """``size`` distinct pseudo-words of 1-4 syllables (sign-like text has many words)."""
    words: dict[str, None] = {}
    while len(words) < size:
        n = rng.choice((1, 2, 2, 3, 3, 4))
        word = "".join(
            rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS) for _ in range(n)
        )
        words[word] = None
    return list(words)


def build_fts_store(lines: int, vocabulary_size: int) -> tuple[Path, list[str]]:
    """A store with ``lines`` synthetic lines of text on lines/5 photos (built once).

    Words follow a Zipf law over a vocabulary of ``vocabulary_size`` pseudo-words, as words in
    real text do. The text lines are inserted first and the full-text tables filled in one
    statement each afterwards (what the insert triggers would do row by row, much faster).
    """
    from indexer.store import Store
    from indexer.store.schema import TEXT_DDL
    from indexer.textfold import searchable

    rng = random.Random(0)
    vocab = vocabulary(vocabulary_size, rng)
    marker = FTS_DIR / f"built-{lines}-{vocabulary_size}"
    if marker.exists():
        return FTS_DIR, vocab
    shutil.rmtree(FTS_DIR, ignore_errors=True)
    log(f"building {lines:,} synthetic text lines into {FTS_DIR} (once) ...")
    Store(FTS_DIR, create=True).close()
    conn = sqlite3.connect(FTS_DIR / "objsearch.db")
    photos = lines // 5
    weights = [1 / (rank + 1) for rank in range(len(vocab))]
    with conn:
        conn.executemany(
            "INSERT INTO photos (id, path, size, mtime_ns, width, height, content_hash, caption, "
            "indexed_at) VALUES (?, ?, 1, 1, 640, 480, ?, '', 0)",
            ((i, f"/synthetic/{i:07d}.jpg", f"{i:032x}") for i in range(1, photos + 1)),
        )
        for trigger in ("text_search_insert", "text_search_delete"):
            conn.execute(f"DROP TRIGGER {trigger}")
        done = 0
        while done < lines:
            n = min(100_000, lines - done)
            counts = [rng.randint(1, 4) for _ in range(n)]
            drawn = iter(rng.choices(vocab, weights, k=sum(counts)))
            rows = []
            for i, count in enumerate(counts, done):
                text = " ".join(next(drawn) for _ in range(count)).upper()
                rows.append((i // 5 + 1, text, searchable(text), rng.uniform(0.6, 1.0)))
            conn.executemany(
                "INSERT INTO text_regions (photo_id, x1, y1, x2, y2, text, folded, confidence) "
                "VALUES (?, 10, 10, 200, 40, ?, ?, ?)",
                rows,
            )
            done += n
            log(f"  {done:,} lines")
        conn.execute("INSERT INTO text_search (rowid, folded) SELECT id, folded FROM text_regions")
        conn.execute(
            "INSERT INTO photo_words (rowid, words) SELECT photo_id, ' ' || group_concat(text, ' ') "
            "FROM text_regions GROUP BY photo_id"
        )
        for statement in TEXT_DDL:
            conn.execute(statement)  # the triggers back, as an index run leaves them
    conn.close()
    marker.touch()
    return FTS_DIR, vocab


def fts_rows(lines: int, vocabulary_size: int, queries: int) -> list[list[str]]:
    from retrieval import Searcher

    store_dir, vocab = build_fts_store(lines, vocabulary_size)
    rng = random.Random(1)
    weights = [1 / (rank + 1) for rank in range(len(vocab))]
    long = [w for w in vocab if len(w) >= 6]
    kinds = {
        "a whole word, drawn as words occur": rng.choices(vocab, weights, k=queries),
        "a whole word, drawn from the vocabulary": rng.choices(vocab, k=queries),
        "4 letters inside a word": [w[1:5] for w in rng.choices(long, k=queries)],
        "3 letters inside a word": [w[1:4] for w in rng.choices(long, k=queries)],
        "a word found nowhere": [f"zq{rng.randint(0, 10**6)}x" for _ in range(queries)],
    }
    rows = []
    with Searcher(store_dir, load_encoder=False) as searcher:
        searcher.search(ocr="warm", top_k=10)  # SQLite pages and statements warm
        for what, qs in kinds.items():
            times, found = [], []
            for q in qs:
                t = time.perf_counter()
                hits = searcher.search(ocr=q, top_k=10)
                times.append((time.perf_counter() - t) * 1000)
                found.append(sum(h.matches for h in hits))
            rows.append(
                [
                    f"{lines:,}",
                    what,
                    f"{statistics.median(found):.0f}",
                    f"**{percentile(times, 50):.1f}**",
                    f"{percentile(times, 95):.1f}",
                    "≤ 50 ms",
                    f"{os.getloadavg()[0]:.1f}",
                ]
            )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--indexing", action="store_true")
    parser.add_argument("--fts", action="store_true")
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    parser.add_argument("--small", type=int, default=8)
    parser.add_argument("--large", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--vocabulary", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=50)
    args = parser.parse_args(argv)
    if args.indexing:
        photos = sorted(args.photos.glob("*.jpg"))
        rows = indexing_rows(photos, args.small, args.large, args.rounds)
        print(
            markdown_table(
                [
                    "photos",
                    "objects s/photo",
                    "objects + --ocr s/photo",
                    "OCR s/photo",
                    "added",
                    "target",
                    "load avg",
                ],
                rows,
            )
        )
    if args.fts:
        print(
            markdown_table(
                [
                    "text lines",
                    "query",
                    "lines in the top 10 photos (median)",
                    "p50 ms",
                    "p95 ms",
                    "target",
                    "load avg",
                ],
                fts_rows(args.lines, args.vocabulary, args.queries),
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
