"""Per-file failures: the stages a file can fail at, and "decode it or say why it failed".

A file that cannot be indexed is recorded (:class:`~indexer.store.records.FailureRecord`,
shown by ``status``) and the run goes on. The local pipeline, Ray's decode tasks and the
text reader all decode through :func:`decode_or_error`, so a file fails the same way with
the same reason whichever way it was indexed.
"""

from __future__ import annotations

from ..errors import first_line
from ..media.decode import DecodedPhoto, DecodeError, FileDigest, read_digest, read_photo
from ..store.records import FailureRecord

STAGE_SCAN = "scan"
"""The scan found the file but cannot use it (unreadable folder entry, bad name...)."""
STAGE_DECODE = "decode"
"""The file's bytes are not a photo this version can decode (or too large)."""
STAGE_MODEL = "model"
"""The detector or embedding model failed on this photo alone."""
STAGE_OCR = "ocr"
"""The text reader failed on this photo; its other regions are stored."""
STAGES = (STAGE_SCAN, STAGE_DECODE, STAGE_MODEL, STAGE_OCR)


def decode_or_error(
    path: str, *, max_megapixels: float, decode_side: int | None
) -> DecodedPhoto | DecodeError:
    """The decoded photo, or the :class:`DecodeError` to record for it.

    A decoder bug on one file (any other exception) is that file's failure too: it must
    not stop the run.
    """
    try:
        return read_photo(path, max_megapixels=max_megapixels, decode_side=decode_side)
    except DecodeError as exc:
        return exc
    except Exception as exc:
        return DecodeError(f"cannot decode: {first_line(exc)}")


def digest_or_error(path: str) -> FileDigest | DecodeError:
    """The file's hash and stat (no pixels decoded), or the :class:`DecodeError` to record."""
    try:
        return read_digest(path)
    except DecodeError as exc:
        return exc


def decode_failure(path: str, error: DecodeError | str) -> FailureRecord:
    """The failure recorded for a file that could not be decoded."""
    return FailureRecord(path, STAGE_DECODE, str(error))
