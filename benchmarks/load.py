"""The service under load: N concurrent POSTs into the example web service, to the sink.

Three processes, as in production: this one (the HTTP clients, which also sample the
service's memory and probe its ``/health``), ``examples/web_service.py`` (one S3Client
for every request), and ``benchmarks/sink.py`` (a local S3 that discards bodies)::

    python benchmarks/load.py                          # N = 1, 8, 32, 64; 256 MiB each
    python benchmarks/load.py --clients 64 --size-mib 256 --budgets none,256
    python benchmarks/load.py --services s3stream       # without the aiobotocore peer

The same service written with aiobotocore (``benchmarks/aiobotocore_service.py``) runs
beside it. For each service, N and memory budget it reports the aggregate MiB/s, the
service's idle and peak RSS (sampled every 10 ms through /proc), its growth over idle, and
/health latency (p50/p99, probed every 50 ms on the same event loop that streams the
uploads). Each
POST carries Content-Length, which the service passes as ``size=``. Results go to
``benchmarks/results/load.json`` and ``load.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MiB = 1 << 20
CHUNK = 1 * MiB
_BLOCK = os.urandom(CHUNK)


def _start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _body(size: int) -> Any:
    sent = 0
    view = memoryview(_BLOCK)
    while sent < size:
        n = min(CHUNK, size - sent)
        yield view[:n]
        sent += n


async def _wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(400):
            if proc.poll() is not None:
                raise RuntimeError("the service exited during startup")
            try:
                async with http.get(url + "/health") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError("the service did not become healthy")


async def _sample_rss(pid: int, stop: asyncio.Event, peak: list[int]) -> None:
    proc = psutil.Process(pid)
    while not stop.is_set():
        peak[0] = max(peak[0], proc.memory_info().rss)
        await asyncio.sleep(0.01)


async def _probe(url: str, stop: asyncio.Event, latencies: list[float]) -> None:
    async with aiohttp.ClientSession() as http:
        while not stop.is_set():
            t = time.perf_counter()
            async with http.get(url + "/health") as resp:
                await resp.read()
            latencies.append(time.perf_counter() - t)
            await asyncio.sleep(0.05)


async def _one_run(service_url: str, pid: int, clients: int, size: int,
                   idle: int) -> dict[str, Any]:
    """``idle`` is the service's RSS when it had just started: an earlier run's heap, which
    the allocator keeps, is not this run's growth, but it is the service's memory."""
    stop = asyncio.Event()
    peak = [psutil.Process(pid).memory_info().rss]
    latencies: list[float] = []
    sampler = asyncio.create_task(_sample_rss(pid, stop, peak))
    prober = asyncio.create_task(_probe(service_url, stop, latencies))
    connector = aiohttp.TCPConnector(limit=0)
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=None)) as http:
        async def post(n: int) -> int:
            async with http.post(f"{service_url}/upload/load/{n}", data=_body(size),
                                 headers={"Content-Length": str(size)}) as resp:
                await resp.read()
                return resp.status

        statuses = await asyncio.gather(*(post(n) for n in range(clients)))
    elapsed = time.perf_counter() - started
    stop.set()
    await asyncio.gather(sampler, prober)
    ordered = sorted(latencies)
    return {
        "clients": clients, "size_mib": size // MiB, "seconds": round(elapsed, 2),
        "ok": statuses.count(200), "statuses": sorted(set(statuses)),
        "aggregate_mib_s": round(clients * size / MiB / elapsed, 1),
        "idle_rss_mib": round(idle / MiB, 1), "peak_rss_mib": round(peak[0] / MiB, 1),
        "growth_mib": round((peak[0] - idle) / MiB, 1),
        "health_p50_ms": round(1000 * statistics.median(ordered), 1) if ordered else None,
        "health_p99_ms": round(1000 * ordered[int(0.99 * (len(ordered) - 1))], 1)
        if ordered else None,
    }


SERVICES = {"s3stream": ROOT / "examples" / "web_service.py",
            "aiobotocore": HERE / "aiobotocore_service.py"}


def run(clients: list[int], size: int, budgets: list[int | None],
        services: list[str], mmap_threshold: int | None = None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    sink = _start([sys.executable, str(HERE / "sink.py"), "--port", "0"], dict(os.environ))
    try:
        assert sink.stdout is not None
        sink_port = json.loads(sink.stdout.readline())["port"]
        configs = [(name, budget) for name in services
                   for budget in (budgets if name == "s3stream" else [None])]
        for name, budget in configs:
            port = _free_port()
            env = {**os.environ, "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{sink_port}",
                   "AWS_ACCESS_KEY_ID": "AKIDBENCH", "AWS_SECRET_ACCESS_KEY": "bench-secret",
                   "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
                   "UPLOAD_BUCKET": "bench", "UPLOAD_PORT": str(port),
                   "UPLOAD_MAX_BYTES": str(size + 1), "LOG_LEVEL": "WARNING",
                   "UPLOAD_MEMORY_LIMIT_MIB": "none" if budget is None else str(budget)}
            if mmap_threshold:
                # glibc's allocator, as a deployment would set it (see --mmap-threshold).
                env["MALLOC_MMAP_THRESHOLD_"] = str(mmap_threshold)
            service = _start([sys.executable, str(SERVICES[name])], env)
            try:
                url = f"http://127.0.0.1:{port}"
                asyncio.run(_wait_healthy(url, service))
                idle = psutil.Process(service.pid).memory_info().rss
                for n in clients:
                    row = asyncio.run(_one_run(url, service.pid, n, size, idle))
                    row["memory_limit_mib"] = budget
                    row["service"] = name
                    row["mmap_threshold"] = mmap_threshold
                    print(json.dumps(row), flush=True)
                    rows.append(row)
            finally:
                _stop(service)
    finally:
        _stop(sink)
    return rows


def _markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| service | memory_limit | POSTs | MiB/s | idle RSS | peak RSS | growth | "
             "/health p50 | p99 |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        budget = "none" if r["memory_limit_mib"] is None else f"{r['memory_limit_mib']} MiB"
        lines.append(f"| {r.get('service', 's3stream')} | {budget} | {r['clients']} | "
                     f"{r['aggregate_mib_s']:,} | "
                     f"{r['idle_rss_mib']} | {r['peak_rss_mib']} | {r['growth_mib']} | "
                     f"{r['health_p50_ms']} ms | {r['health_p99_ms']} ms |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,8,32,64")
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--budgets", default="none,256",
                        help="memory_limit values in MiB, 'none' for unlimited")
    parser.add_argument("--services", default="s3stream,aiobotocore")
    parser.add_argument(
        "--mmap-threshold", type=int, default=128 * 1024,
        help="MALLOC_MMAP_THRESHOLD_ for every service process (glibc): buffers this large "
             "or larger are mapped and unmapped on their own, so the heap does not keep the "
             "free space between long-lived part buffers and short-lived socket reads; 0 "
             "leaves glibc's sliding threshold (default 131072)")
    parser.add_argument("--out", default=str(HERE / "results" / "load.json"))
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    budgets = [None if b == "none" else int(b) for b in args.budgets.split(",")]
    rows = run(clients, args.size_mib * MiB, budgets, args.services.split(","),
               args.mmap_threshold or None)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/load.py " + " ".join(sys.argv[1:])
    out.write_text(json.dumps({"command": command, "python": platform.python_version(),
                               "cpus": os.cpu_count(), "rows": rows}, indent=2))
    out.with_suffix(".md").write_text(f"`{command}`\n\n" + _markdown(rows))
    print(_markdown(rows))


if __name__ == "__main__":
    main()
