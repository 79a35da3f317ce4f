"""The store's reads: photo states for a scan, records for results, vectors for FAISS."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from indexer.store import NewText, PhotoText, Store
from indexer.store.reads import IN_CHUNK, chunked
from tests.fixtures.store_records import DIM, random_photo


def test_chunked_slices_cover_every_item_once() -> None:
    items = list(range(2 * IN_CHUNK + 5))
    parts = list(chunked(items))
    assert [len(p) for p in parts] == [IN_CHUNK, IN_CHUNK, 5]
    assert [i for p in parts for i in p] == items


def test_photo_states_for_more_paths_than_one_statement_takes(tmp_path: Path) -> None:
    with Store(tmp_path, create=True) as store:
        store.commit_batch([random_photo(f"p{i}", i, objects=0) for i in range(IN_CHUNK + 10)])
        wanted = [f"/photos/p{i}.jpg" for i in range(0, IN_CHUNK + 10, 2)] + ["/not/stored.jpg"]
        states = store.photo_states(wanted)
        every = store.photo_states()
    assert len(every) == IN_CHUNK + 10
    assert set(states) == set(wanted[:-1])
    assert states["/photos/p4.jpg"].mtime_ns == 4 and states["/photos/p4.jpg"].size == 100


def test_results_read_regions_photos_and_text(tmp_path: Path) -> None:
    with Store(tmp_path, create=True) as store:
        added = store.commit_batch([random_photo("b", 2), random_photo("a", 1)]).added_ids
        found = store.regions_with_photos([*added.tolist(), 999])
        line = NewText((0.0, 5.0, 4.0, 6.0), "EXIT", 0.8)
        first = NewText((0.0, 1.0, 4.0, 2.0), "OPEN", 0.9)
        store.commit_batch([], texts=[PhotoText(1, [line, first], "engine")])
        texts = store.texts_of_photos([1, 2])
        photo, regions = store.photo_with_regions(1) or (None, [])
        unread = store.unread_photos(["/photos/a.jpg", "/photos/b.jpg"])
        vector = store.region_vector(int(added[0]))
        order = [p.path for p, _ in store.iter_photos(vectors=False)]
    assert set(found) == set(added.tolist())  # the unknown id is left out
    assert found[int(added[0])][1].path == "/photos/b.jpg"
    assert [t.text for t in texts[1]] == ["OPEN", "EXIT"] and 2 not in texts  # top to bottom
    assert photo is not None and [r.kind for r in regions] == ["image", "object"]
    assert [u.path for u in unread] == ["/photos/a.jpg"]
    assert vector is not None and vector.shape == (DIM,)
    np.testing.assert_allclose(np.linalg.norm(vector), 1.0, rtol=1e-5)
    assert order == ["/photos/a.jpg", "/photos/b.jpg"]


def test_region_owners_give_kind_and_photo_for_more_ids_than_one_statement_takes(
    tmp_path: Path,
) -> None:
    with Store(tmp_path, create=True) as store:
        batch = [random_photo(f"p{i}", i, objects=2) for i in range(IN_CHUNK // 3 + 5)]
        added = store.commit_batch(batch).added_ids
        owners = store.region_owners([*added.tolist(), 10**9])
        rows = store.regions_with_photos(added.tolist())
    assert len(added) > IN_CHUNK and set(owners) == set(added.tolist())  # unknown id left out
    assert owners == {i: (region.kind, photo.id) for i, (region, photo) in rows.items()}
    assert {kind for kind, _ in owners.values()} == {"image", "object"}


def test_iter_vectors_reads_every_vector_in_id_order_in_chunks(tmp_path: Path) -> None:
    with Store(tmp_path, create=True) as store:
        store.set_meta(embed_dim=DIM)
        store.commit_batch([random_photo(f"p{i}", i) for i in range(5)])
        parts = list(store.iter_vectors(chunk=3))
        counts = store.counts()
    ids = np.concatenate([p[0] for p in parts])
    assert [len(p[0]) for p in parts] == [3, 3, 3, 1]
    assert ids.tolist() == list(range(1, 11)) and counts.regions == 10
    assert all(p[1].shape == (len(p[0]), DIM) for p in parts)
