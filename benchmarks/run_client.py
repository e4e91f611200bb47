"""Run one upload (or download) once, in this process, and print one JSON line with
what it cost.

    python benchmarks/run_client.py --client s3stream --endpoint http://127.0.0.1:PORT \
        --size 1073741824 --part-size 8388608 --concurrency 8
    python benchmarks/run_client.py --op download --client obstore \
        --endpoint http://127.0.0.1:PORT --key __gen__/1073741824 --size 1073741824

``--op download`` runs the client module's ``download(cfg)`` instead of ``run(cfg)``:
the sink's synthetic object ``--key`` is streamed and discarded, each chunk checked by
``source.Checker`` (``--verify crc`` adds a CRC-32 of every byte). ``--ca-bundle PEM``
makes the client trust that CA (the runner's ``--tls``).

Measured around the upload only (imports and the data pool are ready before):
wall time, CPU time of the whole process (``getrusage(RUSAGE_SELF)``: user + sys of
every thread), peak RSS (``VmHWM``; reset to the current RSS just before the upload
where the kernel allows it, so it is the peak of the upload itself on top of the
idle process), and with ``--ticker`` the event loop's longest stall: a task that
sleeps 1 ms records how late each wake-up is.

Always exits 0 with a JSON line; a client that cannot be imported or fails reports
``"ok": false`` and the error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from clients import VARIANTS, load
from source import Source

MiB = 1 << 20
GiB = 1 << 30


@dataclass
class Config:
    endpoint: str
    bucket: str
    key: str
    size: int
    part_size: int
    concurrency: int
    region: str
    access_key: str
    secret_key: str
    source: Source | None
    options: dict[str, Any]
    ca_bundle: str | None = None
    #: Downloads: "sample" (length and each chunk's first bytes) or "crc" (also CRC-32).
    verify: str = "sample"


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _thread_cpu() -> dict[str, tuple[str, float, float]]:
    """CPU seconds (user, sys) of every thread of this process, by thread id."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/self/task/{tid}/comm") as f:
                name = f.read().strip()
        except OSError:
            continue
        out[tid] = (name, int(fields[11]) / tick, int(fields[12]) / tick)
    return out


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class Ticker:
    """Wakes every ``interval`` s and records how late each wake-up was."""

    def __init__(self, interval: float = 0.001) -> None:
        self.interval = interval
        self.lateness: list[float] = []
        #: (lateness, CPU time of the loop's thread in that interval) of the worst tick: a
        #: stall with little CPU means the thread was preempted (CPU contention), one with
        #: as much CPU as lateness means code held the loop.
        self.worst = (0.0, 0.0)
        #: The longest time code held the loop: of each wake-up's lateness, the part the
        #: loop's thread spent on a core (its CPU time in that interval, at most the
        #: lateness). A wake-up late only because the thread waited for a core, or for
        #: the GIL, adds nothing.
        self.held = 0.0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval
            cpu = time.thread_time()
            await asyncio.sleep(self.interval)
            late = loop.time() - due
            used = time.thread_time() - cpu
            self.lateness.append(late)
            if late > self.worst[0]:
                self.worst = (late, used)
            if min(late, used) > self.held:
                self.held = min(late, used)

    def summary(self) -> dict[str, Any]:
        late = sorted(self.lateness)
        if not late:
            return {"ticks": 0}
        return {
            "ticks": len(late),
            "stall_max_ms": late[-1] * 1e3,
            "stall_max_loop_cpu_ms": self.worst[1] * 1e3,
            "loop_held_max_ms": self.held * 1e3,
            "stall_p99_ms": late[int(len(late) * 0.99) - 1 if len(late) > 1 else 0] * 1e3,
            "stall_p50_ms": late[len(late) // 2] * 1e3,
            "stalls_over_5ms": sum(1 for x in late if x > 0.005),
            "stalls_over_10ms": sum(1 for x in late if x > 0.010),
        }


async def _run_async(entry: Any, cfg: Config, ticker: Ticker | None,
                     workers: int | None) -> dict[str, Any]:
    if workers:
        from concurrent.futures import ThreadPoolExecutor

        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(workers))
    tick_task = asyncio.create_task(ticker.run()) if ticker else None
    try:
        return dict(await entry(cfg))
    finally:
        if tick_task is not None:
            tick_task.cancel()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Run one benchmark upload; print a JSON line.")
    p.add_argument("--client", required=True, choices=sorted(VARIANTS))
    p.add_argument("--op", choices=["upload", "download"], default="upload")
    p.add_argument("--ca-bundle", default=None, help="PEM file of the CA to trust (https)")
    p.add_argument("--verify", choices=["sample", "crc"], default="sample",
                   help="downloads: what each client checks of the bytes it receives")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--bucket", default="bench")
    p.add_argument("--key", default="bench/object")
    p.add_argument("--size", type=int, default=GiB)
    p.add_argument("--part-size", type=int, default=8 * MiB)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--access-key", default="AKIDBENCHMARK0000001")
    p.add_argument("--secret-key", default="bench-secret-key")
    p.add_argument("--source", choices=["pool", "fresh"], default="pool")
    p.add_argument("--chunk-size", type=int, default=None,
                   help="chunks of exactly this many bytes instead of uneven 64 KiB-4 MiB")
    p.add_argument("--kwargs", default="{}", help="JSON merged into the client's options")
    p.add_argument("--ticker", action="store_true", help="measure event-loop stalls")
    p.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    p.add_argument("--profile", metavar="FILE", help="cProfile the upload into FILE")
    p.add_argument("--workers", type=int, default=None,
                   help="size of the event loop's default executor (asyncio.to_thread)")
    p.add_argument("--preload", metavar="FILE", action="append", default=[],
                   help="run this Python file first (experiments: patch a client to A/B it)")
    args = p.parse_args(argv)

    variant = VARIANTS[args.client]
    out: dict[str, Any] = {
        "client": variant.name, "signing": variant.signing, "checksum": variant.checksum,
        "size": args.size, "part_size": args.part_size, "concurrency": args.concurrency,
        "source": args.source, "chunk_size": args.chunk_size,
        "loop": args.loop if variant.is_async else "-",
        "kwargs": json.loads(args.kwargs), "ok": False, "op": args.op,
        "tls": args.endpoint.startswith("https:"),
    }
    try:
        for path in args.preload:
            with open(path) as f:
                exec(compile(f.read(), path, "exec"), {"__name__": "__preload__"})
        out["preload"] = args.preload
        module = load(variant)
        entry = module.run if args.op == "upload" else getattr(module, "download", None)
        if entry is None:
            raise NotImplementedError(f"{variant.name} has no download")
        options = {**variant.options, **json.loads(args.kwargs)}
        source = Source(args.size, args.source, args.chunk_size) if args.op == "upload" \
            else None
        cfg = Config(args.endpoint, args.bucket, args.key, args.size, args.part_size,
                     args.concurrency, args.region, args.access_key, args.secret_key,
                     source, options, args.ca_bundle, args.verify)
        ticker = Ticker() if args.ticker and variant.is_async else None
        if variant.is_async:
            if args.loop == "uvloop":
                import uvloop

                def runner(coro: Any) -> Any:
                    return uvloop.run(coro)
            else:
                runner = asyncio.run

            def call() -> dict[str, Any]:
                return dict(runner(_run_async(entry, cfg, ticker, args.workers)))
        else:
            def call() -> dict[str, Any]:
                return dict(entry(cfg))

        out["rss_base_mib"] = _status_kib("VmRSS") / 1024
        out["peak_reset"] = _reset_peak_rss()
        profiler = None
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
        threads0 = _thread_cpu()
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        info = call()
        if profiler is not None:
            profiler.disable()
        wall = time.perf_counter() - t0
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        threads1 = _thread_cpu()
        if profiler is not None:
            profiler.dump_stats(args.profile)
        user = ru1.ru_utime - ru0.ru_utime
        system = ru1.ru_stime - ru0.ru_stime
        out.update(
            ok=True, wall_s=wall, user_s=user, sys_s=system, cpu_s=user + system,
            mib_s=args.size / MiB / wall, cpu_s_per_gib=(user + system) / (args.size / GiB),
            rss_peak_mib=_status_kib("VmHWM") / 1024, info=info,
            minor_faults=ru1.ru_minflt - ru0.ru_minflt,
            vol_ctx=ru1.ru_nvcsw - ru0.ru_nvcsw, invol_ctx=ru1.ru_nivcsw - ru0.ru_nivcsw,
        )
        if ticker is not None:
            out.update(ticker.summary())
        # Where the CPU went, by thread (the loop's thread is the process's main thread;
        # threads that ended during the upload are missing here but in cpu_s).
        main_tid = str(os.getpid())
        by_thread = []
        for tid, (name, user1, sys1) in threads1.items():
            _, user0, sys0 = threads0.get(tid, (name, 0.0, 0.0))
            cpu = user1 - user0 + sys1 - sys0
            if cpu > 0:
                by_thread.append({"thread": "main" if tid == main_tid else name,
                                  "user_s": round(user1 - user0, 3),
                                  "sys_s": round(sys1 - sys0, 3)})
        out["threads"] = sorted(by_thread, key=lambda t: -(t["user_s"] + t["sys_s"]))
    except BaseException as exc:  # a peer that cannot run is a row, not a crash
        out["error"] = f"{type(exc).__name__}: {exc}"[:2000]
        out["traceback"] = traceback.format_exc()[-4000:]
    print(json.dumps(out), flush=True)
    sys.stderr.flush()
    # Skip interpreter teardown: some native clients (awscrt) abort while their threads
    # shut down, and the result is already out.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
