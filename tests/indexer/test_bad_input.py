"""Indexing survives any photo folder: every bad file becomes a recorded failure, never a stop.

Each case writes one bad (or unusual) file beside two good photos and indexes the folder with
the tiny test models. A bad file must end up in the ``failures`` table with a reason a person
can act on, the good photos must be indexed anyway, and unusual-but-valid images (CMYK,
16-bit, alpha, palettes, animations, long names) must index as RGB instead of failing.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
import shutil
import sqlite3
import stat
import struct
import tempfile
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import indexer.indexing.failures
from indexer.indexing import IndexStats
from indexer.media.decode import read_photo
from indexer.media.scan import printable_path, scan
from indexer.store import DB_NAME, FAISS_NAME, KIND_IMAGE, Store
from indexer.store.doctor import check
from retrieval.cli import app
from retrieval.search import Searcher

# Small letterbox and few objects per photo: the cases test file handling, not the models.
from tests.fixtures import (  # noqa: E402
    Models,
    cli_index_args,
    make_indexer,
    photo_pixels,
    region_set,
    write_photo,
)

GOOD = ("good_a.jpg", "good_b.png")


def photo_bytes(fmt: str = "JPEG", size: tuple[int, int] = (96, 72), seed: int = 0) -> bytes:
    out = io.BytesIO()
    Image.fromarray(photo_pixels(size[0], size[1], seed)).save(out, format=fmt)
    return out.getvalue()


def png_bomb(path: Path, width: int = 20_000, height: int = 20_000) -> None:
    """A valid 1-bit palette PNG of ``width`` x ``height``: ~50 KB on disk, 400 MP decoded."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    row = b"\x00" + bytes((width + 7) // 8)  # filter byte + one bit per pixel
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 3, 0, 0, 0))
        + chunk(b"PLTE", bytes([0, 0, 0, 255, 255, 255]))
        + chunk(b"IDAT", idat)
        + chunk(b"IEND", b"")
    )


def photo_folder(root: Path) -> Path:
    folder = root / "photos"
    folder.mkdir()
    for i, name in enumerate(GOOD):
        write_photo(folder / name, seed=i)
    return folder


def stored_paths(index_dir: Path) -> set[str]:
    with Store(index_dir) as store:
        return set(store.photo_states())


def assert_good_indexed(index_dir: Path, folder: Path) -> None:
    paths = stored_paths(index_dir)
    for name in GOOD:
        assert str(folder / name) in paths, f"good photo {name} was not indexed"
    with Store(index_dir) as store:
        counts = store.counts()
        assert counts.images == counts.photos  # one whole-photo region per photo
        index, _ = store.load_vectors()
        assert index.ntotal == counts.regions


# -- bad files: each is recorded as a failure, the rest of the folder is indexed ---------------


def _zero_byte(folder: Path) -> list[str]:
    (folder / "empty.jpg").write_bytes(b"")
    return [str(folder / "empty.jpg")]


def _truncated_jpeg(folder: Path) -> list[str]:
    data = photo_bytes("JPEG", (320, 240))
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    return [str(folder / "truncated.jpg")]


def _truncated_png(folder: Path) -> list[str]:
    data = photo_bytes("PNG", (320, 240))
    (folder / "truncated.png").write_bytes(data[: len(data) // 2])
    return [str(folder / "truncated.png")]


def _garbage(folder: Path) -> list[str]:
    (folder / "garbage.jpg").write_bytes(np.random.default_rng(3).bytes(5000))
    return [str(folder / "garbage.jpg")]


def _text(folder: Path) -> list[str]:
    (folder / "notes.jpg").write_text("shopping list: eggs, milk\n" * 20, encoding="utf-8")
    return [str(folder / "notes.jpg")]


def _bomb(folder: Path) -> list[str]:
    png_bomb(folder / "bomb.png")
    assert (folder / "bomb.png").stat().st_size < 200_000
    return [str(folder / "bomb.png")]


def _broken_symlink(folder: Path) -> list[str]:
    (folder / "dangling.jpg").symlink_to(folder / "deleted-long-ago.jpg")
    return [str(folder / "dangling.jpg")]


def _symlink_loop(folder: Path) -> list[str]:
    (folder / "loop_a.jpg").symlink_to(folder / "loop_b.jpg")
    (folder / "loop_b.jpg").symlink_to(folder / "loop_a.jpg")
    return [str(folder / "loop_a.jpg"), str(folder / "loop_b.jpg")]


def _non_utf8_name(folder: Path) -> list[str]:
    raw = os.path.join(os.fsencode(folder), b"caf\xe9.jpg")
    with open(raw, "wb") as fh:
        fh.write(photo_bytes())
    return [printable_path(os.fsdecode(raw))]


def _unreadable_io_error(folder: Path) -> list[str]:
    # /proc/self/mem is a regular file that even root cannot read from offset 0 (EIO).
    if not stat.S_ISREG(os.stat("/proc/self/mem").st_mode):
        pytest.skip("/proc/self/mem is not a regular file on this system")
    (folder / "memory.jpg").symlink_to("/proc/self/mem")
    return [str(folder / "memory.jpg")]


def _fifo(folder: Path) -> list[str]:
    os.mkfifo(folder / "pipe.jpg")  # opening it for reading would block forever
    return [str(folder / "pipe.jpg")]


def _path_too_long(folder: Path) -> list[str]:
    """A photo nested so deep that its full path exceeds PATH_MAX (made with dir fds)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    parts: list[str] = []
    try:
        while len(os.fsencode(str(folder))) + sum(len(p) + 1 for p in parts) < 4200:
            name = f"{len(parts):02d}" + "d" * 200
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
            parts.append(name)
        photo = os.open("deep.jpg", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(photo, photo_bytes())
        os.close(photo)
    finally:
        os.close(fd)
    # The walk reaches the first folder whose path is too long to use; that is the failure.
    deep = str(folder)
    for name in parts:
        deep = os.path.join(deep, name)
        if len(os.fsencode(deep)) >= 4096:
            return [deep]
    raise AssertionError("the nested path never exceeded PATH_MAX")


BAD_CASES: dict[str, tuple[Callable[[Path], list[str]], tuple[str, ...]]] = {
    "zero-byte": (_zero_byte, ("empty file",)),
    "truncated-jpeg": (_truncated_jpeg, ("truncated",)),
    "truncated-png": (_truncated_png, ("truncated",)),
    "garbage-bytes": (_garbage, ("not a readable image (unrecognised or corrupt header)",)),
    "text-file": (_text, ("not a readable image (unrecognised or corrupt header)",)),
    "decompression-bomb": (_bomb, ("too large", "20000x20000", "180 MP limit")),
    "broken-symlink": (_broken_symlink, ("broken symlink", "deleted-long-ago.jpg")),
    "symlink-loop": (_symlink_loop, ("symlink loop",)),
    "non-utf8-name": (_non_utf8_name, ("not valid UTF-8",)),
    "unreadable-eio": (_unreadable_io_error, ("cannot read file",)),
    "fifo": (_fifo, ("not a regular file",)),
    "path-too-long": (_path_too_long, ("too long",)),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_file_is_recorded_and_the_rest_indexed(
    case: str, models: Models, tmp_path: Path
) -> None:
    make_bad, reason_parts = BAD_CASES[case]
    folder = photo_folder(tmp_path)
    bad_paths = make_bad(folder)
    index_dir = tmp_path / "index"

    with ThreadPoolExecutor(1) as pool:  # a scan that loops would hang here, not pass
        scanned = pool.submit(lambda: list(scan([folder]))).result(timeout=60)
    assert len({item.path for item in scanned}) == len(scanned)

    stats = make_indexer(models, index_dir).index([folder])

    assert stats.indexed == len(GOOD)
    assert stats.failures == len(bad_paths)
    assert sorted(path for path, _ in stats.failed) == sorted(bad_paths)
    assert_good_indexed(index_dir, folder)
    assert not set(bad_paths) & stored_paths(index_dir)
    with Store(index_dir) as store:
        failures = {f.path: f for f in store.failures()}
        health = check(store)
    assert set(failures) == set(bad_paths), "exactly the bad files failed"
    for path in bad_paths:
        reason = failures[path].reason
        for part in reason_parts:
            assert part in reason, f"reason {reason!r} should mention {part!r}"
    assert health.failures == len(bad_paths)
    assert sorted(f["path"] for f in health.failed) == sorted(bad_paths)
    assert health.consistent, health.problems

    # A second run keeps the failures (the files are still bad) and re-reads nothing good.
    again = make_indexer(models, index_dir).index([folder])
    assert again.indexed == 0 and again.unchanged == len(GOOD)
    with Store(index_dir) as store:
        assert sorted(f.path for f in store.failures()) == sorted(bad_paths)


def test_bomb_limit_is_configurable(models: Models, tmp_path: Path) -> None:
    folder = photo_folder(tmp_path)
    write_photo(folder / "big.jpg", size=(1600, 1000))  # 1.6 MP
    stats = make_indexer(models, tmp_path / "index", max_megapixels=1.0).index([folder])
    assert stats.indexed == len(GOOD) and stats.failures == 1
    path, reason = stats.failed[0]
    assert path == str(folder / "big.jpg")
    assert "1600x1000" in reason and "1 MP limit" in reason and "--max-megapixels" in reason


@contextlib.contextmanager
def _as_user(uid: int) -> Iterator[None]:
    """Run the block with an unprivileged effective uid (root reads any file otherwise)."""
    old_uid, old_gid = os.geteuid(), os.getegid()
    try:
        os.setegid(uid)
        os.seteuid(uid)
    except PermissionError:
        os.setegid(old_gid)
        pytest.skip("cannot drop privileges here, and root reads a chmod 000 file anyway")
    try:
        yield
    finally:
        os.seteuid(old_uid)
        os.setegid(old_gid)


def test_unreadable_file_permission_denied(models: Models) -> None:
    # pytest's tmp_path sits in a 0700 folder; an unprivileged uid needs a reachable one.
    root = Path(tempfile.mkdtemp(prefix="objsearch-perm-"))
    try:
        root.chmod(0o777)
        folder = photo_folder(root)
        folder.chmod(0o777)
        secret = folder / "secret.jpg"
        write_photo(secret)
        secret.chmod(0)
        index_dir = root / "index"
        if os.geteuid() == 0:
            with _as_user(65534):
                stats = make_indexer(models, index_dir).index([folder])
        else:
            stats = make_indexer(models, index_dir).index([folder])
        assert stats.indexed == len(GOOD) and stats.failures == 1
        assert stats.failed == [(str(secret), "permission denied")]
        assert_good_indexed(index_dir, folder)
        with Store(index_dir) as store:
            assert [(f.path, f.reason) for f in store.failures()] == [
                (str(secret), "permission denied")
            ]
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_photo_vanishing_between_scan_and_read(
    models: Models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = photo_folder(tmp_path)
    doomed = folder / "doomed.jpg"
    write_photo(doomed, seed=7)
    real_read = indexer.indexing.failures.read_photo

    def delete_then_read(path: str, **kwargs: object) -> object:
        if path == str(doomed):
            doomed.unlink()  # deleted after the scan saw it, before it is read
        return real_read(path, **kwargs)

    monkeypatch.setattr(indexer.indexing.failures, "read_photo", delete_then_read)
    stats = make_indexer(models, tmp_path / "index").index([folder])
    assert stats.indexed == len(GOOD) and stats.failures == 1
    assert stats.failed[0][0] == str(doomed) and "vanished" in stats.failed[0][1]
    assert_good_indexed(tmp_path / "index", folder)
    with Store(tmp_path / "index") as store:
        assert [f.path for f in store.failures()] == [str(doomed)]

    # Once it is gone for good, the next run drops the stale failure.
    monkeypatch.undo()
    make_indexer(models, tmp_path / "index").index([folder])
    with Store(tmp_path / "index") as store:
        assert store.failures() == []


# -- unusual but valid images: indexed as RGB, not failures ------------------------------------


def _cmyk_jpeg(path: Path) -> None:
    Image.new("CMYK", (96, 72), (0, 255, 255, 0)).save(path, format="JPEG")  # red in CMYK


def _gray16_png(path: Path) -> None:
    ramp = (np.arange(96 * 72, dtype=np.uint32).reshape(72, 96) * 9).astype(np.uint16)
    image = Image.fromarray(ramp)
    assert image.mode.startswith("I;16")
    image.save(path, format="PNG")
    with Image.open(path) as back:
        assert back.mode in ("I;16", "I"), back.mode  # really stored as 16-bit grayscale


def _palette_transparent_png(path: Path) -> None:
    image = Image.new("P", (96, 72), 0)
    image.putpalette([0, 0, 255] + [0, 255, 0] * 255)
    image.paste(1, (48, 0, 96, 72))
    image.save(path, format="PNG", transparency=0)  # index 0 (blue) is transparent


def _rgba_png(path: Path) -> None:
    image = Image.new("RGBA", (96, 72), (255, 0, 0, 255))
    image.paste((0, 0, 0, 0), (48, 0, 96, 72))  # right half fully transparent
    image.save(path, format="PNG")


def _la_png(path: Path) -> None:
    image = Image.new("LA", (96, 72), (0, 255))
    image.paste((0, 0), (48, 0, 96, 72))
    image.save(path, format="PNG")


def _animated(fmt: str) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        frames = [Image.new("RGB", (96, 72), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
        frames[0].save(
            path, format=fmt, save_all=True, append_images=frames[1:], duration=100, loop=0
        )
        with Image.open(path) as back:
            assert back.is_animated and back.n_frames == 3

    return make


def _long_name(folder: Path) -> Path:
    path = folder / ("l" * 251 + ".jpg")
    assert len(os.fsencode(path.name)) == 255
    write_photo(path, seed=5)
    return path


# name -> (file name, writer, expected RGB at the left half, expected RGB at the right half)
Pixel = tuple[int, int, int] | None
VALID_CASES: dict[str, tuple[str, Callable[[Path], None], Pixel, Pixel]] = {
    "cmyk-jpeg": ("cmyk.jpg", _cmyk_jpeg, (255, 0, 0), (255, 0, 0)),
    "gray16-png": ("gray16.png", _gray16_png, None, None),
    "palette-transparency-png": (
        "palette.png",
        _palette_transparent_png,
        (255, 255, 255),
        (0, 255, 0),
    ),
    "rgba-png": ("rgba.png", _rgba_png, (255, 0, 0), (255, 255, 255)),
    "la-png": ("la.png", _la_png, (0, 0, 0), (255, 255, 255)),
    "animated-gif": ("animated.gif", _animated("GIF"), (255, 0, 0), (255, 0, 0)),
    "animated-webp": ("animated.webp", _animated("WEBP"), (255, 0, 0), (255, 0, 0)),
}


@pytest.mark.parametrize("case", list(VALID_CASES))
def test_unusual_valid_image_is_indexed_as_rgb(case: str, models: Models, tmp_path: Path) -> None:
    name, make, left, right = VALID_CASES[case]
    folder = photo_folder(tmp_path)
    path = folder / name
    make(path)

    decoded = read_photo(str(path))
    assert decoded.image.mode == "RGB"
    assert (decoded.width, decoded.height) == (96, 72)
    arr = np.asarray(decoded.image).astype(int)
    if left is not None:
        assert np.abs(arr[36, 10] - left).max() <= 24, (arr[36, 10], left)
        assert np.abs(arr[36, 86] - right).max() <= 24, (arr[36, 86], right)
    else:  # 16-bit ramp: stretched into 8 bits, not clipped to white
        gray = arr[..., 0]
        assert gray.min() <= 5 and gray.max() >= 250 and len(np.unique(gray)) > 100

    stats = make_indexer(models, tmp_path / "index").index([folder])
    assert stats.failures == 0, stats.failed
    assert stats.indexed == len(GOOD) + 1
    with Store(tmp_path / "index") as store:
        photos = {p.path: (p, regions) for p, regions in store.iter_photos()}
    photo, regions = photos[str(path)]
    assert (photo.width, photo.height) == (96, 72)
    assert [r.kind for r in regions].count(KIND_IMAGE) == 1


def test_long_file_name_is_indexed(models: Models, tmp_path: Path) -> None:
    folder = photo_folder(tmp_path)
    path = _long_name(folder)
    stats = make_indexer(models, tmp_path / "index").index([folder])
    assert stats.failures == 0, stats.failed
    assert str(path) in stored_paths(tmp_path / "index")


def test_symlinked_folder_loop_neither_hangs_nor_duplicates(models: Models, tmp_path: Path) -> None:
    folder = photo_folder(tmp_path)
    (folder / "sub").mkdir()
    write_photo(folder / "sub" / "inner.jpg", seed=9)
    (folder / "sub" / "back_to_top").symlink_to(folder)  # sub/back_to_top -> photos
    (folder / "self").symlink_to(folder)  # photos/self -> photos

    with ThreadPoolExecutor(1) as pool:
        scanned = pool.submit(lambda: list(scan([folder]))).result(timeout=60)
    assert sorted(item.path for item in scanned) == sorted(
        [str(folder / n) for n in GOOD] + [str(folder / "sub" / "inner.jpg")]
    )

    stats = make_indexer(models, tmp_path / "index").index([folder])
    assert stats.failures == 0 and stats.indexed == 3
    paths = stored_paths(tmp_path / "index")
    assert paths == {str(folder / n) for n in GOOD} | {str(folder / "sub" / "inner.jpg")}
    with Store(tmp_path / "index") as store:
        assert [f.path for f in store.failures()] == []


# -- the CLI: some failed files are not a failed run -------------------------------------------


def _cli_index_args(models: Models, folder: Path, index_dir: Path) -> list[str]:
    return [*cli_index_args(models, folder, index_dir), "--max-objects", "3"]


def test_cli_exits_zero_when_only_some_files_fail(models: Models, tmp_path: Path) -> None:
    folder = photo_folder(tmp_path)
    bad = [
        *_zero_byte(folder),
        *_garbage(folder),
        *_broken_symlink(folder),
        *_non_utf8_name(folder),
    ]
    odd = folder / "odd [" / "names] here"  # '[/names]' is rich markup: print it as text
    odd.mkdir(parents=True)
    (odd / "x.jpg").write_bytes(b"")
    bad.append(str(odd / "x.jpg"))
    write_photo(odd / "[bold]ok.jpg", seed=3)
    index_dir = tmp_path / "index"

    runner = CliRunner()
    result = runner.invoke(app, [*_cli_index_args(models, folder, index_dir), "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert stats["indexed"] == len(GOOD) + 1 and stats["failures"] == len(bad)
    assert "pi_heif" not in result.output  # no warnings from other libraries' image hooks

    human = runner.invoke(app, _cli_index_args(models, folder, index_dir))
    assert human.exit_code == 0, human.output

    status = runner.invoke(app, ["status", "--index", str(index_dir), "--json"])
    assert status.exit_code == 0, status.output
    health = json.loads(status.stdout)
    assert health["photos"] == len(GOOD) + 1 and health["failures"] == len(bad)
    assert health["consistent"] is True
    assert sorted(f["path"] for f in health["failed"]) == sorted(bad)
    assert all(f["reason"] for f in health["failed"])

    table = runner.invoke(app, ["status", "--index", str(index_dir)])
    assert table.exit_code == 0, table.output
    assert "odd[/names]here/x.jpg" in squashed(table.output)

    found = runner.invoke(
        app, ["search", "a cat", "--index", str(index_dir), "--device", "cpu", "-k", "5"]
    )
    assert found.exit_code == 0, found.output
    assert "odd[/names]here/[bold]ok.jpg" in squashed(found.output)


def test_indexer_stats_count_every_failure(models: Models, tmp_path: Path) -> None:
    folder = photo_folder(tmp_path)
    bad = [*_zero_byte(folder), *_truncated_jpeg(folder), *_symlink_loop(folder), *_bomb(folder)]
    stats: IndexStats = make_indexer(models, tmp_path / "index").index([folder])
    assert stats.failures == len(bad) == len(stats.failed)
    assert sorted(p for p, _ in stats.failed) == sorted(bad)
    assert stats.to_dict()["failures"] == len(bad)


# -- an unusable index is a clear error, not a traceback ---------------------------------------


def words(text: str) -> str:
    """Output with rich's line wrapping undone, for substring checks."""
    return " ".join(text.split())


def squashed(text: str) -> str:
    """Output without whitespace or table borders: paths folded across cells read whole."""
    return re.sub(r"[\s│┃]", "", text)


def _assert_clean_error(result: object, *needles: str) -> None:
    assert result.exit_code not in (0, None), result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in words(result.output), result.output


def test_index_folder_that_cannot_be_created(models: Models, tmp_path: Path) -> None:
    folder = photo_folder(tmp_path)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    index_dir = blocker / "idx"  # no one, root included, can create a folder under a file
    result = CliRunner().invoke(app, _cli_index_args(models, folder, index_dir))
    _assert_clean_error(result, "Cannot create index folder")
    with pytest.raises(OSError) as raised:  # the OS really refuses (not a permission quirk)
        os.makedirs(index_dir)
    assert raised.value.errno == errno.ENOTDIR


def _built_index(models: Models, tmp_path: Path) -> tuple[Path, Path]:
    folder = photo_folder(tmp_path)
    index_dir = tmp_path / "index"
    make_indexer(models, index_dir).index([folder])
    return folder, index_dir


def _assert_no_change_run_is_clean(
    runner: CliRunner, models: Models, folder: Path, index_dir: Path
) -> None:
    """An index run over a damaged database: a clean error naming ``doctor``, or no change.

    A run with nothing to do reads no region row (the FAISS file and SQLite's counts say
    what is searchable), so it may finish without meeting damaged pages.
    """
    result = runner.invoke(app, _cli_index_args(models, folder, index_dir))
    if result.exit_code != 0:
        _assert_clean_error(result, "objsearch doctor")
    else:
        assert "0 photos indexed" in result.output, result.output


def test_garbage_database_is_a_clear_error(models: Models, tmp_path: Path) -> None:
    folder, index_dir = _built_index(models, tmp_path)
    for suffix in ("-wal", "-shm"):
        (index_dir / (DB_NAME + suffix)).unlink(missing_ok=True)
    (index_dir / DB_NAME).write_bytes(np.random.default_rng(1).bytes(64 * 1024))
    runner = CliRunner()
    _assert_no_change_run_is_clean(runner, models, folder, index_dir)
    for args in (
        ["search", "cat", "--index", str(index_dir), "--device", "cpu"],
        ["status", "--index", str(index_dir)],
        ["export", "--index", str(index_dir)],
    ):
        _assert_clean_error(runner.invoke(app, args), "objsearch doctor", "corrupt")


def test_damaged_database_pages_are_a_clear_error(models: Models, tmp_path: Path) -> None:
    """A database whose header is intact but whose pages are garbage (a bad disk block)."""
    folder, index_dir = _built_index(models, tmp_path)
    db = index_dir / DB_NAME
    with Store(index_dir) as store:  # fold the WAL into the main file
        with store.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = 4096
    data = bytearray(db.read_bytes())
    assert len(data) > 3 * page_size
    noise = np.random.default_rng(2).bytes(len(data) - 2 * page_size)
    data[2 * page_size :] = noise  # keep the header and schema page, wreck the rest
    db.write_bytes(bytes(data))

    runner = CliRunner()
    _assert_no_change_run_is_clean(runner, models, folder, index_dir)
    for args in (
        ["search", "cat", "--index", str(index_dir), "--device", "cpu"],
        ["status", "--index", str(index_dir)],
    ):
        _assert_clean_error(runner.invoke(app, args), "objsearch doctor")

    result = runner.invoke(app, ["doctor", "--index", str(index_dir)])
    assert result.exit_code == 0, result.output
    assert "damaged database" in words(result.output)
    status = runner.invoke(app, ["status", "--index", str(index_dir), "--json"])
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["consistent"] is True
    # Re-indexing fills in whatever the salvage could not recover.
    make_indexer(models, index_dir).index([folder])
    assert_good_indexed(index_dir, folder)


def test_doctor_reads_around_one_damaged_page(models: Models, tmp_path: Path) -> None:
    """One bad block in the regions table: clear errors everywhere, then a salvage that keeps
    the readable photos (no re-embedding) and drops only the ones it cannot vouch for."""
    folder = photo_folder(tmp_path)
    for i in range(18):
        write_photo(folder / f"extra_{i:02d}.jpg", size=(96 + 8 * (i % 3), 72), seed=10 + i)
    index_dir = tmp_path / "index"
    make_indexer(models, index_dir).index([folder])
    # Small (1 KB) pages, as an old store could have, so that this small
    # regions table spans several leaf pages and one bad page takes only some photos.
    with contextlib.closing(sqlite3.connect(index_dir / DB_NAME)) as raw:
        raw.executescript("PRAGMA journal_mode=DELETE; PRAGMA page_size=1024; VACUUM;")
        raw.execute("PRAGMA journal_mode=WAL")
    before = region_set(index_dir, digits=0)
    with Store(index_dir) as store:
        ids_before = {p.path: [r.id for r in regions] for p, regions in store.iter_photos()}
        with store.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            page_size = conn.exec_driver_sql("PRAGMA page_size").scalar()
            try:
                leaves = [
                    r[0]
                    for r in conn.exec_driver_sql(
                        "SELECT pageno FROM dbstat WHERE name = 'regions' AND pagetype = 'leaf' "
                        "ORDER BY path"
                    )
                ]
            except Exception:
                pytest.skip("this SQLite has no dbstat table to find a page of the regions table")
    assert len(leaves) >= 3, leaves
    db = index_dir / DB_NAME
    data = bytearray(db.read_bytes())
    page = leaves[len(leaves) // 2]
    data[(page - 1) * page_size : page * page_size] = np.random.default_rng(5).bytes(page_size)
    db.write_bytes(bytes(data))

    runner = CliRunner()
    _assert_no_change_run_is_clean(runner, models, folder, index_dir)
    for args in (
        ["search", "cat", "--index", str(index_dir), "--device", "cpu"],
        ["status", "--index", str(index_dir)],
        ["export", "--index", str(index_dir)],
    ):
        _assert_clean_error(runner.invoke(app, args), "objsearch doctor")

    result = runner.invoke(app, ["doctor", "--index", str(index_dir)])
    assert result.exit_code == 0, result.output
    said = words(result.output)
    assert "moved the damaged database" in said and "unreadable stretch" in said, said
    with Store(index_dir) as store:
        health = check(store)
        assert health.consistent, health.problems
        kept = {p.path: [r.id for r in regions] for p, regions in store.iter_photos()}
    lost = set(ids_before) - set(kept)
    assert 0 < len(lost) < len(ids_before) // 2, (len(lost), len(ids_before))
    assert all(kept[p] == ids_before[p] for p in kept)  # survivors keep their regions as-is

    stats = make_indexer(models, index_dir).index([folder])
    assert stats.indexed == len(lost) and stats.unchanged == len(kept)
    assert region_set(index_dir, digits=0) == before
    with Store(index_dir) as store:
        new_ids = [r.id for p, regions in store.iter_photos() if p.path in lost for r in regions]
        assert check(store).consistent
    old_max = max(i for ids in ids_before.values() for i in ids)
    assert min(new_ids) > old_max  # ids of lost regions are never handed out again


def test_truncated_faiss_file(models: Models, tmp_path: Path) -> None:
    folder, index_dir = _built_index(models, tmp_path)
    faiss_file = index_dir / FAISS_NAME
    data = faiss_file.read_bytes()
    faiss_file.write_bytes(data[: len(data) // 2])
    with Store(index_dir) as store:
        regions = store.counts().regions

    with Searcher(index_dir, embedder=models.embedder) as searcher:
        results = searcher.search(text="a cat", top_k=5)
        assert searcher.vectors.ntotal == regions  # rebuilt from SQLite
    assert {r.image for r in results} == {str(folder / n) for n in GOOD}

    runner = CliRunner()
    status = runner.invoke(app, ["status", "--index", str(index_dir), "--json"])
    assert status.exit_code == 0, status.output
    health = json.loads(status.stdout)
    assert health["consistent"] is True and health["vectors_file"] == "fresh"  # written back

    faiss_file.write_bytes(data[: len(data) // 2])
    health = json.loads(runner.invoke(app, ["status", "--index", str(index_dir), "--json"]).stdout)
    assert health["consistent"] is True, health["problems"]  # SQLite is intact
    assert health["vectors_file"] == "stale (rebuilt on next use)"
    assert "unreadable" in health["vectors_detail"]
    human = runner.invoke(app, ["status", "--index", str(index_dir)])
    assert "rebuilt on next use" in words(human.output)

    fixed = runner.invoke(app, ["doctor", "--index", str(index_dir)])
    assert fixed.exit_code == 0, fixed.output
    assert "rebuilt the FAISS index" in words(fixed.output)
    with Store(index_dir) as store:
        health2 = check(store)
        assert health2.consistent, health2.problems
        assert health2.vectors == regions
        assert store.load_vectors()[1] is True  # the repaired file loads as-is
    again = runner.invoke(app, ["doctor", "--index", str(index_dir)])
    assert again.exit_code == 0 and "nothing to repair" in words(again.output)


def test_doctor_salvages_garbage_database(models: Models, tmp_path: Path) -> None:
    folder, index_dir = _built_index(models, tmp_path)
    for suffix in ("-wal", "-shm"):
        (index_dir / (DB_NAME + suffix)).unlink(missing_ok=True)
    garbage = np.random.default_rng(4).bytes(64 * 1024)
    (index_dir / DB_NAME).write_bytes(garbage)

    runner = CliRunner()
    result = runner.invoke(app, ["doctor", "--index", str(index_dir)])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert "moved the damaged database to" in words(result.output)
    kept = [p for p in index_dir.iterdir() if p.name.startswith(DB_NAME + ".damaged-")]
    assert len(kept) == 1 and kept[0].read_bytes() == garbage  # nothing is thrown away
    assert "rebuilt the FAISS index" in words(result.output)

    status = runner.invoke(app, ["status", "--index", str(index_dir), "--json"])
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["consistent"] is True
    # The salvaged index is usable: indexing again restores the photos.
    stats = make_indexer(models, index_dir).index([folder])
    assert stats.indexed == len(GOOD)
    assert_good_indexed(index_dir, folder)
