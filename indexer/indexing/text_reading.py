"""Reading the text in photos at index time (``--ocr``). Computes only, stores nothing.

Two ways in, both ending in the store's batch transaction like every other region:

* photos that run the models anyway (new or changed) get their text read right after their
  regions are computed (:func:`with_text` wraps the region step, locally and in Ray actors);
* photos already in the index whose text was never read (an index built without ``--ocr``,
  or upgraded from an older schema) are decoded and read alone, with no other model
  (:func:`unread_batches`), so adding ``--ocr`` to an existing index costs OCR only.

A photo the OCR engine fails on keeps its other regions: its record carries the reason
(:func:`text_failures` turns it into a recorded failure) and it stays unread, so the next
``--ocr`` run tries it again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from ..errors import ObjsearchError, first_line
from ..media.decode import DecodedPhoto, DecodeError
from ..models.ocr import TextLine, TextReader
from ..store.database import Store
from ..store.records import FailureRecord, NewPhoto, NewText, PhotoText
from .failures import STAGE_OCR, decode_failure, decode_or_error
from .timing import Timings, timed

EmbedFn = Callable[[Sequence[DecodedPhoto]], list[NewPhoto]]


def read_lines(reader: TextReader, photo: DecodedPhoto) -> list[NewText] | str:
    """The text lines of one decoded photo, or why the engine failed on it."""
    try:
        lines: list[TextLine] = reader.predict(photo.image, photo.scale)
    except ObjsearchError:
        raise  # a model that cannot load stops the run, as for the other models
    except Exception as exc:
        return f"text reading failed on this photo: {first_line(exc)}"
    return [NewText(line.box, line.text, line.confidence) for line in lines]


def with_text(embed: EmbedFn, reader: TextReader, timings: Timings | None = None) -> EmbedFn:
    """``embed`` followed by reading each photo's text into its record."""

    def embed_and_read(photos: Sequence[DecodedPhoto]) -> list[NewPhoto]:
        records = embed(photos)
        with timed(timings, "ocr"):
            for photo, record in zip(photos, records, strict=True):
                read = read_lines(reader, photo)
                if isinstance(read, str):
                    record.text_error = read
                else:
                    record.texts, record.text_engine = read, reader.model_id
        return records

    return embed_and_read


def text_failures(photos: Iterable[NewPhoto]) -> list[FailureRecord]:
    """The recorded failures of photos whose text could not be read."""
    return [FailureRecord(p.path, STAGE_OCR, p.text_error) for p in photos if p.text_error]


@dataclass
class ReadBatch:
    """The text read in a batch of stored photos, and the photos that failed."""

    texts: list[PhotoText]
    failures: list[FailureRecord]


def unread_batches(
    store: Store,
    reader: Callable[[], TextReader],
    paths: Iterable[str],
    *,
    batch_size: int,
    max_megapixels: float,
    decode_side: int | None,
    timings: Timings,
) -> Iterator[ReadBatch]:
    """Read the text of the stored photos at ``paths`` that have not been read, in batches.

    ``reader`` is called only when some photo needs it (a run with nothing unread loads no
    OCR model). A file whose bytes changed since it was stored is left for the next run's
    plan (it is not this photo any more); one that cannot be decoded is a failure.
    """
    unread = store.unread_photos(paths)
    for start in range(0, len(unread), batch_size):
        batch = ReadBatch([], [])
        for photo in unread[start : start + batch_size]:
            with timed(timings, "decode"):
                decoded = decode_or_error(
                    photo.path, max_megapixels=max_megapixels, decode_side=decode_side
                )
            if isinstance(decoded, DecodeError):
                batch.failures.append(decode_failure(photo.path, decoded))
                continue
            if decoded.content_hash != photo.content_hash:
                continue
            with timed(timings, "ocr"):
                engine = reader()
                read = read_lines(engine, decoded)
            if isinstance(read, str):
                batch.failures.append(FailureRecord(photo.path, STAGE_OCR, read))
            else:
                batch.texts.append(PhotoText(photo.id, read, engine.model_id))
        yield batch
