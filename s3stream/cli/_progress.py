"""The progress bar: bytes, percentage (when the size is known), rate and ETA on one
terminal line, redrawn at most ten times a second.

``render()`` is pure (what the line says for given numbers); ``ProgressBar`` decides when to
draw it. ``progress_for()`` gives a real bar only when the stream is a terminal, else a
``NoProgress`` that does nothing, so output piped into a file or a log stays clean.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from typing import Protocol, TextIO

__all__ = ["NoProgress", "Progress", "ProgressBar", "format_bytes", "progress_for", "render"]

#: Seconds between two redraws at least: faster than that is flicker, and costs CPU.
REDRAW_INTERVAL = 0.1
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def format_bytes(n: float) -> str:
    """``1536`` -> ``1.5 KiB``; bytes below 1 KiB as a whole number."""
    unit = 0
    while n >= 1024 and unit < len(_UNITS) - 1:
        n /= 1024
        unit += 1
    return f"{int(n)} B" if unit == 0 else f"{n:.1f} {_UNITS[unit]}"


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _columns(stream: TextIO) -> int:
    """The width of the terminal ``stream`` is on (the bar's, not stdout's, which may be a
    pipe); a terminal that reports no size counts as 80 columns."""
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        columns = 0
    return columns or shutil.get_terminal_size().columns


def render(label: str, done: int, total: int | None, elapsed: float, width: int,
           *, final: bool = False) -> str:
    """The bar's line (without the carriage return), at most ``width`` characters."""
    rate = done / elapsed if elapsed > 0 else 0.0
    amount = format_bytes(done) if total is None else \
        f"{format_bytes(done)} / {format_bytes(total)}"
    fields = [amount]
    if total:
        fields.append(f"{min(100, 100 * done // total):3d}%")
    fields.append(f"{format_bytes(rate)}/s")
    if final:
        fields.append(f"in {_clock(elapsed)}")
    elif total is not None and rate > 0:
        fields.append(f"ETA {_clock(max(0, total - done) / rate)}")
    tail = "  ".join(fields)
    room = width - len(tail) - 2
    if room < 8:
        return tail[:max(0, width)]
    if len(label) > room:
        label = "..." + label[-(room - 3):]
    return f"{label}  {tail}"


class Progress(Protocol):
    def update(self, done: int) -> None: ...

    def finish(self) -> None: ...

    def abandon(self) -> None: ...


class NoProgress:
    """Where no bar is shown: stderr is not a terminal, or ``--quiet``/``--no-progress``."""

    def update(self, done: int) -> None:
        pass

    def finish(self) -> None:
        pass

    def abandon(self) -> None:
        pass


class ProgressBar:
    """One line on ``stream``, rewritten in place (``\\r``) as ``update(done)`` reports the
    bytes done so far. ``finish()`` draws the final numbers and ends the line;
    ``abandon()`` ends it as it is, so that an error message starts on a line of its own."""

    def __init__(self, stream: TextIO, label: str, total: int | None, *,
                 clock: Callable[[], float] = time.monotonic,
                 width: Callable[[], int] | None = None) -> None:
        self._stream = stream
        self._label = label
        self._total = total
        self._clock = clock
        self._width = width or (lambda: _columns(stream))
        self._started = clock()
        self._last_draw: float | None = None
        self._done = 0
        self._drawn = False
        self._ended = False

    def update(self, done: int) -> None:
        self._done = done
        now = self._clock()
        if self._last_draw is not None and now - self._last_draw < REDRAW_INTERVAL:
            return
        self._last_draw = now
        self._draw(now, final=False)

    def finish(self) -> None:
        if self._ended:
            return
        self._draw(self._clock(), final=True)
        self._end()

    def abandon(self) -> None:
        if self._drawn and not self._ended:
            self._end()

    def _draw(self, now: float, *, final: bool) -> None:
        if self._ended:
            return
        # One column short of the width: writing the last column makes some terminals wrap.
        line = render(self._label, self._done, self._total, now - self._started,
                      self._width() - 1, final=final)
        # \x1b[K clears what a longer earlier line left to the right.
        self._stream.write(f"\r{line}\x1b[K")
        self._stream.flush()
        self._drawn = True

    def _end(self) -> None:
        self._ended = True
        self._stream.write("\n")
        self._stream.flush()


def progress_for(stream: TextIO, label: str, total: int | None, *, enabled: bool) -> Progress:
    """A bar on ``stream`` if it is a terminal and ``enabled``, else one that draws nothing."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):  # closed, or not a real stream
        tty = False
    if enabled and tty:
        return ProgressBar(stream, label, total)
    return NoProgress()
