"""Progress of the long steps (loading CDR files, rating a period), counted in calls.

A job takes ``progress``: a callback called with the number of records or calls just done
(:data:`Progress`), or ``True`` for a bar of its own (:func:`calls_bar`), or nothing. The bar is
tqdm's: a text bar with calls/s in a terminal (the command line), a widget in a notebook
(``tqdm.auto``, ipywidgets).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

#: called with how many records (loading) or calls (rating) were just done
Progress = Callable[[int], None]


@contextlib.contextmanager
def calls_bar(description: str, total: int | None = None, unit: str = "calls") -> Iterator[Progress]:
    """A progress bar (``tqdm.auto``: text in a terminal, a widget in a notebook) showing the
    count and the rate in ``unit``/s; yields its :data:`Progress` callback and closes the bar."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=description, unit=f" {unit}", unit_scale=True, smoothing=0.1)
    try:
        yield bar.update
    finally:
        bar.close()


@contextlib.contextmanager
def progress_of(progress: bool | Progress | None, description: str, unit: str = "calls"
                ) -> Iterator[Progress | None]:
    """The callback for a job's ``progress`` argument: a bar of its own for ``True``, the given
    callback, or None."""
    if progress is True:
        with calls_bar(description, unit=unit) as update:
            yield update
    else:
        yield progress or None
