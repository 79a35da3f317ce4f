"""The model stage in this process: decode on a thread pool, run the models, commit behind.

The local twin of :mod:`.ray_stage`. Photos decode on a pool of threads, in order, with a
bounded number in flight; each batch runs the models on this thread while a single writer
thread commits the batch before it, so a GPU never waits for a SQLite commit and the store
sees the batches in order, one transaction each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from ..media.decode import DecodedPhoto, DecodeError
from .plan import Work
from .run import IndexRun, batches

ProgressFn = Callable[[int, int], None]
DecodeFn = Callable[[Work], DecodedPhoto | DecodeError]


def decoded_in_order(
    work: Sequence[Work], decode: DecodeFn, *, workers: int, window: int
) -> Iterator[tuple[Work, DecodedPhoto | DecodeError]]:
    """``decode`` each item on ``workers`` threads, yielded in order, ``window`` in flight."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
        pending: list[tuple[Work, Future[DecodedPhoto | DecodeError]]] = []
        it = iter(work)
        for item in it:
            pending.append((item, pool.submit(decode, item)))
            if len(pending) >= window:
                break
        while pending:
            item, fut = pending.pop(0)
            nxt = next(it, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(decode, nxt)))
            yield item, fut.result()


def run_locally(
    run: IndexRun,
    work: Sequence[Work],
    decode: DecodeFn,
    *,
    batch_size: int,
    workers: int,
    progress: ProgressFn | None,
) -> None:
    """Run the models here; each batch's commit overlaps the next batch's model work.

    One writer thread commits the batches in order, one at a time, so the store sees the
    same sequence of transactions as a run without it. Progress counts committed photos.
    """
    total, done = len(work), 0
    decoded = decoded_in_order(work, decode, workers=workers, window=max(2 * batch_size, 4))
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="commit") as writer:
        pending: tuple[Future[None], int] | None = None

        def committed() -> None:
            """Wait for the commit in flight; progress counts committed photos only."""
            nonlocal done
            if pending is None:
                return
            future, size = pending
            future.result()  # a commit's error stops the run here
            done += size
            if progress:
                progress(done, total)

        for batch in batches(decoded, batch_size):
            embedded = run.run_models(batch)
            committed()
            pending = (writer.submit(run.commit_embedded, embedded), len(batch))
        committed()
