"""What SHA-256 of freshly produced data costs, depending on where and when it is hashed.

Signed payloads need the SHA-256 of every part before the part's request can be signed.
This measures, on this machine, the CPU time per GiB of hashing the benchmark's fresh
chunks (the same sizes as ``source.py``, each a newly allocated ``bytes``) three ways:

* on the thread that just produced each chunk, right away (bytes in that core's cache);
* on another thread, handed each chunk through a queue as soon as it exists;
* after a window of 72 MiB, as an upload with 9 parts of 8 MiB in memory does.

    python benchmarks/hash_locality.py [--size 1GiB]

Thread CPU time is measured, so the numbers are costs, not throughputs.
"""

from __future__ import annotations

import argparse
import hashlib
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator

from run import GiB, MiB, parse_size
from source import Source

WINDOW = 72 * MiB


def fresh_chunks(size: int) -> Iterator[bytes]:
    src = Source(size, "fresh")
    yield from src.chunks()


def thread_cpu() -> float:
    return time.clock_gettime(time.CLOCK_THREAD_CPUTIME_ID)


def same_thread(size: int) -> float:
    spent = 0.0
    for chunk in fresh_chunks(size):
        t0 = thread_cpu()
        hashlib.sha256(chunk).digest()
        spent += thread_cpu() - t0
    return spent


def other_thread(size: int) -> float:
    handoff: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
    result: list[float] = []

    def hasher() -> None:
        h = hashlib.sha256()
        t0 = thread_cpu()
        while (chunk := handoff.get()) is not None:
            h.update(chunk)
        result.append(thread_cpu() - t0)

    worker = threading.Thread(target=hasher)
    worker.start()
    for chunk in fresh_chunks(size):
        handoff.put(chunk)
    handoff.put(None)
    worker.join()
    return result[0]


def later(size: int) -> float:
    window: deque[bytes] = deque()
    held = 0
    spent = 0.0
    for chunk in fresh_chunks(size):
        window.append(chunk)
        held += len(chunk)
        while held > WINDOW:
            old = window.popleft()
            held -= len(old)
            t0 = thread_cpu()
            hashlib.sha256(old).digest()
            spent += thread_cpu() - t0
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=parse_size, default=GiB)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    gib = args.size / GiB
    print(f"SHA-256 of {args.size // MiB} MiB of fresh chunks, CPU-s per GiB "
          f"(median of {args.repeats}):")
    for name, fn in [("on the producing thread, at once", same_thread),
                     ("on another thread, at once", other_thread),
                     (f"on the producing thread, {WINDOW // MiB} MiB later", later)]:
        runs = sorted(fn(args.size) / gib for _ in range(args.repeats))
        print(f"  {name:<42} {runs[len(runs) // 2]:.2f}")


if __name__ == "__main__":
    main()
