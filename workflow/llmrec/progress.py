"""Progress of a long loop: a tqdm bar on the terminal and a line in the log at a steady interval.

On a cluster the rule's log file is all a user sees, and a tqdm bar never reaches it (the
adapter, :mod:`llmrec.snake`, points logging at the file; the bar writes to the terminal). So
long loops (text generation, the training loops) count their work through a :class:`Progress`,
which draws the bar unless the config's ``progress`` flag silences it and logs, whether or not
the bar shows, a line such as::

    generate: 448/1536 prompts (29%) in 2 min 05 s, 3.58 prompts/s, ETA 5 min 04 s

at most every ``interval`` seconds, and a closing one when a loop that logged has done more
since its last line. A loop shorter than the interval logs nothing, so that a thousand short
epochs do not fill the log.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack

from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

log = logging.getLogger(__name__)

INTERVAL_S = 30.0
"""Seconds between two progress lines in the log (default of :class:`Progress`)."""


def duration(seconds: float) -> str:
    """``seconds`` for a reader: ``42 s``, ``5 min 07 s``, ``2 h 05 min``."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _writes_to_console(handler: logging.Handler) -> bool:
    return isinstance(handler, logging.StreamHandler) and handler.stream in (
        sys.stdout,
        sys.stderr,
    )


class Progress:
    """Count ``total`` units of work; draw a bar and log done/total, rate and ETA.

    Use it as a context manager and call :meth:`update` as work gets done::

        with Progress(len(batches), "epoch 3", "batches", bar=progress) as done:
            for batch in batches:
                ...
                done.update()

    Args:
        total: units of work of the whole loop.
        desc: what the loop is, first on the bar and on each log line.
        unit: the units' name, plural (``"prompts"``, ``"batches"``).
        bar: draw the tqdm bar on the terminal (default True). Log lines come either way.
        interval: seconds between log lines, at most one per :meth:`update` (default
            ``INTERVAL_S``, 30).
        initial: units already done before this run (a resumed run), not counted in the rate
            (default 0).
        clock: seconds since some fixed point (default ``time.monotonic``; tests pass a fake).

    The rate is the average since the loop started. While the bar shows, other log records
    meant for the terminal are written above it rather than through it.
    """

    def __init__(
        self,
        total: int,
        desc: str,
        unit: str = "steps",
        *,
        bar: bool = True,
        interval: float | None = None,
        initial: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.desc = desc
        self.unit = unit
        self.show_bar = bar
        self.interval = INTERVAL_S if interval is None else interval
        self.initial = self.done = initial
        self.clock = clock
        self.postfix: dict[str, str] = {}
        self.logged_at: int | None = None  # ``done`` at the last line logged
        self._stack = ExitStack()
        self._bar: tqdm | None = None

    def __enter__(self) -> Progress:
        self.start = self.last_line = self.clock()
        if self.show_bar:
            if any(_writes_to_console(h) for h in logging.getLogger().handlers):
                self._stack.enter_context(logging_redirect_tqdm())
            self._bar = self._stack.enter_context(
                tqdm(total=self.total, initial=self.initial, desc=self.desc, unit=self.unit)
            )
        return self

    def update(self, n: int = 1) -> None:
        """``n`` more units done; log a line if ``interval`` seconds passed since the last."""
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        now = self.clock()
        if now - self.last_line >= self.interval:
            self.last_line = now
            self.logged_at = self.done
            log.info("%s", self.line(now))

    def set_postfix(self, **values: object) -> None:
        """Values shown after the counts, on the bar and on the next log lines (a loss)."""
        self.postfix = {k: str(v) for k, v in values.items()}
        if self._bar is not None:
            self._bar.set_postfix(self.postfix)

    def line(self, now: float) -> str:
        """``desc: done/total unit (pct) in elapsed, rate unit/s, ETA`` and the postfix."""
        elapsed = now - self.start
        rate = (self.done - self.initial) / elapsed if elapsed > 0 else 0.0
        text = f"{self.desc}: {self.done}/{self.total} {self.unit}"
        if self.total:
            text += f" ({100 * self.done / self.total:.0f}%)"
        text += f" in {duration(elapsed)}, {rate:.3g} {self.unit}/s"
        if self.done < self.total:
            eta = duration((self.total - self.done) / rate) if rate > 0 else "unknown"
            text += f", ETA {eta}"
        return ", ".join([text, *(f"{k} {v}" for k, v in self.postfix.items())])

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
        # A loop long enough to log says where it ended, unless its last line said so.
        if self.logged_at is not None and self.logged_at != self.done:
            log.info("%s", self.line(self.clock()))
