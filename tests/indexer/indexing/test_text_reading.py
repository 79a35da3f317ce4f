"""--ocr at index time: text lines stored with their photo, read once, failures recorded."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from indexer.models.ocr import TextReader
from indexer.store import Store
from indexer.textfold import fold
from tests.fixtures import Models, make_indexer, write_photo
from tests.fixtures.rendered_text import RenderedWord


def _copy(rendered: list[RenderedWord], folder: Path) -> dict[str, str]:
    """The rendered photos copied into ``folder``: file name -> word."""
    folder.mkdir(parents=True, exist_ok=True)
    for item in rendered:
        shutil.copy(item.path, folder / item.path.name)
    return {item.path.name: item.word for item in rendered}


def _texts(index_dir: Path) -> dict[str, list[str]]:
    """File name -> the text lines read in it (photos read without text map to [])."""
    with Store(index_dir) as store:
        photos = {p.id: Path(p.path).name for p, _ in store.iter_photos()}
        texts = store.texts_of_photos(list(photos))
        with store.engine.connect() as conn:
            read = {r[0] for r in conn.exec_driver_sql("SELECT photo_id FROM text_reads")}
    return {photos[i]: [t.text for t in texts.get(i, [])] for i in read}


class _NoModel:
    """Stands in for a model that must not run."""

    def __getattr__(self, name: str):
        raise AssertionError(f"a model was used ({name}) where none was needed")


class _ChokingReader(TextReader):
    """The real reader, except that it fails on photos of one width (an engine bug)."""

    def __init__(self, choke_width: int) -> None:
        super().__init__()
        self.choke_width = choke_width

    def predict(self, image: Image.Image, scale=(1.0, 1.0)):
        if image.width == self.choke_width:
            raise RuntimeError("engine crashed")
        return super().predict(image, scale)


def test_ocr_run_stores_each_photos_words(
    tmp_path: Path, models: Models, text_reader: TextReader, rendered_words
) -> None:
    words = _copy(rendered_words, tmp_path / "photos")
    write_photo(tmp_path / "photos" / "plain.jpg", seed=5)
    stats = make_indexer(models, tmp_path / "index", ocr=True, text_reader=text_reader).index(
        [tmp_path / "photos"]
    )
    assert stats.failures == 0 and stats.read == len(words) + 1
    texts = _texts(tmp_path / "index")
    assert texts["plain.jpg"] == []  # read, nothing found: not read again
    for name, word in words.items():
        assert any(fold(word) in fold(t) for t in texts[name]), (name, texts[name])
    assert stats.texts == sum(len(v) for v in texts.values())
    with Store(tmp_path / "index") as store:  # no text line became a vector
        assert store.counts().regions == store.load_vectors()[0].ntotal


def test_ocr_on_an_existing_index_reads_only_unread_photos_and_no_other_model(
    tmp_path: Path, models: Models, text_reader: TextReader, rendered_words
) -> None:
    folder = tmp_path / "photos"
    words = _copy(rendered_words[:2], folder)
    index_dir = tmp_path / "index"
    first = make_indexer(models, index_dir).index([folder])
    assert first.read == 0 and _texts(index_dir) == {}
    indexer = make_indexer(models, index_dir, ocr=True, text_reader=text_reader)
    indexer.embedder, indexer.detector = _NoModel(), _NoModel()  # type: ignore[assignment]
    stats = indexer.index([folder])
    assert (stats.indexed, stats.read, stats.failures) == (0, 2, 0)
    texts = _texts(index_dir)
    assert all(any(fold(w) in fold(t) for t in texts[n]) for n, w in words.items())
    again = make_indexer(models, index_dir, ocr=True, text_reader=_NoModel())  # type: ignore[arg-type]
    again.embedder, again.detector = _NoModel(), _NoModel()  # type: ignore[assignment]
    assert again.index([folder]).read == 0  # nothing left to read: no OCR model either


def test_photo_the_engine_fails_on_is_one_failure_and_is_read_later(
    tmp_path: Path, models: Models, text_reader: TextReader, rendered_words
) -> None:
    folder = tmp_path / "photos"
    _copy(rendered_words[:2], folder)
    write_photo(folder / "odd.png", size=(77, 50), seed=2)
    index_dir = tmp_path / "index"
    stats = make_indexer(models, index_dir, ocr=True, text_reader=_ChokingReader(77)).index(
        [folder]
    )
    assert stats.indexed == 3 and stats.read == 2 and stats.failures == 1
    ((path, reason),) = stats.failed
    assert path.endswith("odd.png") and "engine crashed" in reason
    with Store(index_dir) as store:
        (failure,) = store.failures()
        assert failure.stage == "ocr"
        assert store.counts().images == 3  # its other regions were stored
    assert "odd.png" not in _texts(index_dir)
    later = make_indexer(models, index_dir, ocr=True, text_reader=text_reader).index([folder])
    assert (later.read, later.failures) == (1, 0)
    assert "odd.png" in _texts(index_dir)
    with Store(index_dir) as store:
        assert store.failures() == []


def test_moves_keep_text_deletes_drop_it_and_photos_only_reads_too(
    tmp_path: Path, models: Models, text_reader: TextReader, rendered_words
) -> None:
    folder = tmp_path / "photos"
    words = _copy(rendered_words[:2], folder)
    index_dir = tmp_path / "index"
    indexer = make_indexer(
        models, index_dir, ocr=True, text_reader=text_reader, detect_objects=False
    )
    assert indexer.index([folder]).read == 2
    name_a, name_b = sorted(words)
    (folder / "moved").mkdir()
    (folder / name_a).rename(folder / "moved" / name_a)
    (folder / name_b).unlink()
    stats = make_indexer(
        models,
        index_dir,
        ocr=True,
        text_reader=_NoModel(),
        detect_objects=False,  # type: ignore[arg-type]
    ).index([folder])
    assert (stats.moved, stats.removed, stats.read) == (1, 1, 0)
    texts = _texts(index_dir)
    assert set(texts) == {name_a}
    assert any(fold(words[name_a]) in fold(t) for t in texts[name_a])
    with Store(index_dir) as store:
        assert store.counts().objects == 0


def test_ocr_setting_comes_from_the_environment(
    tmp_path: Path, models: Models, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OBJSEARCH_OCR", "1")
    assert make_indexer(models, tmp_path / "i").ocr is True
    assert make_indexer(models, tmp_path / "i", ocr=False).ocr is False
    monkeypatch.setenv("OBJSEARCH_OCR", "0")
    assert make_indexer(models, tmp_path / "i").ocr is False
