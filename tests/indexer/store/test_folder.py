"""Folder checks: whether an index can be written where asked, before anything loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexer.errors import StoreError
from indexer.store.folder import check_creatable, read_only_filesystem, writable_folder
from tests.fixtures.mounts import read_only


def test_a_new_index_below_missing_folders_is_creatable(tmp_path: Path) -> None:
    check_creatable(str(tmp_path / "a" / "b" / "index"))  # the nearest existing folder counts
    assert writable_folder(str(tmp_path)) and not read_only_filesystem(str(tmp_path))


def test_a_file_in_the_way_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="is not a folder"):
        check_creatable(str(tmp_path / "file" / "index"))


def test_a_read_only_mount_is_named_as_such(tmp_path: Path) -> None:
    parent = tmp_path / "parent"
    parent.mkdir()
    with read_only(parent):
        assert read_only_filesystem(str(parent)) and not writable_folder(str(parent))
        with pytest.raises(StoreError, match=r"Cannot create .*/index: .* is read-only"):
            check_creatable(str(parent / "index"))
        with pytest.raises(StoreError, match="The index folder .* is read-only"):
            check_creatable(str(parent))
