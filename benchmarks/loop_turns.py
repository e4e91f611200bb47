"""Where a busy event loop's turns go: a ``run_client.py --preload`` file.

    python benchmarks/run_client.py --client s3stream --endpoint https://127.0.0.1:PORT \\
        --ca-bundle ca.pem --size 1073741824 --source fresh --ticker \\
        --preload benchmarks/loop_turns.py          # writes loop-turns.txt

Times every turn of the asyncio loop (``BaseEventLoop._run_once``) and every callback in
it by the loop thread's CPU time, and when the process exits writes the slowest turns
(over ``LOOP_TURNS_MS``, default 3) with their slowest callbacks to ``LOOP_TURNS_OUT``
(default ``loop-turns.txt``). A ticker's wake-up waits for the rest of one turn and
the callbacks ahead of it in the next, so these turns are what the stall tables measure.
The timing costs about a microsecond per callback.
"""

from __future__ import annotations

import asyncio.base_events
import asyncio.events
import os
import time
from typing import Any

_LIMIT = float(os.environ.get("LOOP_TURNS_MS", "3")) / 1e3
_run_once: Any = asyncio.base_events.BaseEventLoop._run_once  # type: ignore[attr-defined]
_run: Any = asyncio.events.Handle._run
_turn: list[tuple[float, str]] = []
_slow: list[tuple[float, list[tuple[float, str]], int]] = []


def _timed_run(self: asyncio.events.Handle) -> None:
    start = time.thread_time()
    _run(self)
    _turn.append((time.thread_time() - start, repr(self)[:160]))


def _timed_run_once(self: asyncio.base_events.BaseEventLoop) -> None:
    _turn.clear()
    start = time.thread_time()
    _run_once(self)
    spent = time.thread_time() - start
    if spent > _LIMIT:
        _slow.append((spent, sorted(_turn, reverse=True)[:6], len(_turn)))


def _write() -> None:
    _slow.sort(key=lambda s: -s[0])
    with open(os.environ.get("LOOP_TURNS_OUT", "loop-turns.txt"), "w") as f:
        f.write(f"{len(_slow)} turns over {_LIMIT * 1e3:g} ms of loop-thread CPU\n")
        for spent, top, count in _slow[:20]:
            f.write(f"{spent * 1e3:6.2f} ms, {count} callbacks; the slowest:\n")
            for cpu, name in top:
                f.write(f"    {cpu * 1e3:6.2f} ms  {name}\n")


asyncio.base_events.BaseEventLoop._run_once = _timed_run_once  # type: ignore[attr-defined]
asyncio.events.Handle._run = _timed_run  # type: ignore[method-assign]
# run_client.py leaves through os._exit (some native clients abort in interpreter
# teardown), which skips atexit: write the report on the way out instead.
_exit = os._exit


def _exit_after_writing(code: int) -> None:  # type: ignore[misc]
    _write()
    _exit(code)


os._exit = _exit_after_writing  # type: ignore[assignment]
