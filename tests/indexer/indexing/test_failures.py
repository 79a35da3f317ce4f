"""Per-file failures: one decode-or-failure step for local runs, Ray tasks and the text reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexer.indexing import failures
from indexer.indexing.failures import (
    STAGE_DECODE,
    STAGES,
    decode_failure,
    decode_or_error,
    digest_or_error,
)
from indexer.indexing.ray_workers import decode_row
from indexer.media.decode import DecodedPhoto, DecodeError, FileDigest
from indexer.store.schema import Failure
from tests.fixtures import write_photo


def test_stages_are_distinct_and_fit_the_failures_column() -> None:
    assert len(set(STAGES)) == len(STAGES) == 4
    assert all(len(stage) <= Failure.__table__.c.stage.type.length for stage in STAGES)


def test_a_photo_decodes_and_a_non_photo_is_an_error_not_an_exception(tmp_path: Path) -> None:
    write_photo(tmp_path / "ok.png")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 truncated")
    ok = decode_or_error(str(tmp_path / "ok.png"), max_megapixels=50, decode_side=None)
    bad = decode_or_error(str(tmp_path / "bad.jpg"), max_megapixels=50, decode_side=None)
    assert isinstance(ok, DecodedPhoto) and ok.size == (tmp_path / "ok.png").stat().st_size
    assert isinstance(bad, DecodeError)
    record = decode_failure(str(tmp_path / "bad.jpg"), bad)
    assert (record.stage, record.reason) == (STAGE_DECODE, str(bad))
    assert isinstance(digest_or_error(str(tmp_path / "ok.png")), FileDigest)
    assert isinstance(digest_or_error(str(tmp_path / "missing.jpg")), DecodeError)


def test_a_decoder_bug_is_that_files_failure_locally_and_on_ray_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_photo(tmp_path / "ok.png")

    def broken(path: str, **_kwargs: object) -> DecodedPhoto:
        raise ZeroDivisionError("a bug in a codec\nwith a long story")

    monkeypatch.setattr(failures, "read_photo", broken)
    local = decode_or_error(str(tmp_path / "ok.png"), max_megapixels=50, decode_side=None)
    ray = decode_row({"path": str(tmp_path / "ok.png")}, max_megapixels=50, decode_side=None)
    assert isinstance(local, DecodeError)
    assert str(local) == "cannot decode: a bug in a codec" == ray["error"]
