"""What the ``progress`` callback costs: the same upload to the sink with and without it.

    python benchmarks/progress_cost.py --rounds 7 --size-mib 1024

Rounds are interleaved (with, without, with, ...) in one process against one sink
process; the medians and the per-round ratio are printed. The callback does what a
service's would: it updates a counter.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MiB = 1 << 20


async def one(endpoint: str, size: int, with_progress: bool) -> float:
    import s3stream

    block = memoryview(bytes(4 * MiB))
    seen = [0]

    async def source():  # type: ignore[no-untyped-def]
        for start in range(0, size, len(block)):
            yield bytes(block[: min(len(block), size - start)])

    def progress(p: s3stream.Progress) -> None:
        seen[0] = p.bytes_acknowledged

    async with s3stream.S3Client(endpoint=endpoint, region="us-east-1",
                                 credentials=s3stream.Credentials("AK", "SK"),
                                 sign_payload=False, checksum=None) as s3:
        t = time.perf_counter()
        await s3.upload("bench", "progress", source(), part_size=8 * MiB, concurrency=8,
                        progress=progress if with_progress else None)
        elapsed = time.perf_counter() - t
    assert not with_progress or seen[0] == size
    return size / MiB / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--size-mib", type=int, default=1024)
    args = parser.parse_args()
    sink = subprocess.Popen([sys.executable, str(HERE / "sink.py"), "--port", "0"],
                            stdout=subprocess.PIPE)
    try:
        assert sink.stdout is not None
        endpoint = f"http://127.0.0.1:{json.loads(sink.stdout.readline())['port']}"
        on: list[float] = []
        off: list[float] = []
        for _ in range(args.rounds):
            on.append(asyncio.run(one(endpoint, args.size_mib * MiB, True)))
            off.append(asyncio.run(one(endpoint, args.size_mib * MiB, False)))
        ratios = [a / b for a, b in zip(on, off, strict=True)]
        print(json.dumps({
            "with_progress_mib_s": round(statistics.median(on), 1),
            "without_mib_s": round(statistics.median(off), 1),
            "ratio_per_round_median": round(statistics.median(ratios), 3),
            "ratio_range": [round(min(ratios), 3), round(max(ratios), 3)],
            "rounds": args.rounds, "size_mib": args.size_mib}))
    finally:
        sink.terminate()
        sink.wait()


if __name__ == "__main__":
    main()
