"""A minimal, fast S3 sink for benchmarks: it answers multipart uploads and discards bodies.

Run it in its own process (so its CPU is never counted as the client's)::

    python benchmarks/sink.py --port 0          # prints {"port": N, ...} once listening

It speaks just enough HTTP/1.1 (keep-alive, Content-Length and chunked bodies,
``Expect: 100-continue``) and just enough S3 (PutObject, CreateMultipartUpload,
UploadPart, CompleteMultipartUpload, AbortMultipartUpload, HeadObject) for the
clients in ``benchmarks/clients``. It accepts any SigV4 signature without checking it.

Bodies are received straight into one reusable buffer per connection
(``asyncio.BufferedProtocol``: the kernel copies into it, nothing else touches the
bytes), so the sink spends about one memcpy per byte. Only the small XML body of
CompleteMultipartUpload is kept. Every part's size is counted, and Complete checks
the listed parts like S3 does (InvalidPart, InvalidPartOrder, EntityTooSmall), so
the runner can verify that each client sent the whole object:
``GET /__sink__/stats?key=KEY`` answers JSON with the stored size and part count.

Downloads: GetObject (whole, 200; or one ``Range: bytes=a-b`` / ``a-`` / ``-n``, 206 with
``Content-Range``; ``If-Match`` honoured, 412 otherwise) and HeadObject serve synthetic
objects without storing them: ``__gen__/<size>`` in any bucket, or any key uploaded
before (at its stored size). Byte ``i`` of every object is ``source.pattern_slice(i, 1)``,
written straight from one precomputed block (a memoryview slice per write, paced by
the transport's flow control), so serving costs the sink little more than the kernel's
copy. Clients check the bytes with ``source.Checker``.

``--certfile PEM`` (certificate chain and key) serves HTTPS instead; the TLS version
and cipher of every connection are counted in the stats (``tls``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import email.utils
import hashlib
import json
import os
import re
import resource
import signal
import ssl
import sys
import time
import zlib
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from source import MAX_SLICE, pattern_slice

#: One receive buffer per connection; recv_into() fills it, buffer_updated() forgets it.
RECV_BUFFER = 1 << 20
MAX_HEAD = 64 << 10
KEEP_BODY_LIMIT = 4 << 20
MIN_PART = 5 << 20
STATS_BUCKET = "__sink__"
GEN_PREFIX = "__gen__/"
#: Stop writing a body into the transport past this many buffered bytes (then
#: ``resume_writing`` continues it): the sink's memory stays small whatever the object.
WRITE_HIGH = 4 << 20

_PART_RE = re.compile(rb"<PartNumber>\s*(\d+)\s*</PartNumber>")
_ETAG_RE = re.compile(rb"<ETag>\s*([^<]*?)\s*</ETag>")
_REASONS = {100: "Continue", 200: "OK", 204: "No Content", 206: "Partial Content",
            400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            412: "Precondition Failed", 416: "Range Not Satisfiable",
            500: "Internal Server Error"}
_RANGE_RE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*")
LAST_MODIFIED = email.utils.formatdate(1700000000, usegmt=True)


class Body:
    """A synthetic response body: bytes ``start .. start + length - 1`` of the pattern."""

    __slots__ = ("length", "start")

    def __init__(self, start: int, length: int) -> None:
        self.start = start
        self.length = length


class Upload:
    __slots__ = ("bucket", "key", "parts")

    def __init__(self, bucket: str, key: str) -> None:
        self.bucket = bucket
        self.key = key
        #: part number -> (size, etag, {checksum header: value})
        self.parts: dict[int, tuple[int, str, dict[str, str]]] = {}


class State:
    def __init__(self) -> None:
        self.uploads: dict[str, Upload] = {}
        self.objects: dict[str, dict[str, Any]] = {}
        self.counter = 0
        self.body_bytes = 0
        self.requests: dict[str, int] = {}
        self.errors: list[str] = []
        self.started = time.monotonic()
        self.sent_bytes = 0
        #: "TLSv1.3 TLS_AES_256_GCM_SHA384" -> connections (HTTPS only)
        self.tls: dict[str, int] = {}

    def next_id(self) -> str:
        self.counter += 1
        return f"{os.getpid():x}{self.counter:012x}"

    def count(self, op: str) -> None:
        self.requests[op] = self.requests.get(op, 0) + 1

    def stats(self, key: str | None) -> dict[str, Any]:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        out: dict[str, Any] = {
            "cpu_s": ru.ru_utime + ru.ru_stime,
            "body_bytes": self.body_bytes,
            "sent_bytes": self.sent_bytes,
            "tls": dict(self.tls),
            "requests": dict(self.requests),
            "open_uploads": len(self.uploads),
            "errors": self.errors[-20:],
        }
        if key is not None:
            out["object"] = self.objects.get(key)
        return out


_date_cache: tuple[int, str] = (0, "")


def http_date() -> str:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, email.utils.formatdate(now, usegmt=True))
    return _date_cache[1]


def _etag(*parts: object) -> str:
    return '"' + hashlib.md5("/".join(map(str, parts)).encode()).hexdigest() + '"'


# ------------------------------------------------------------- composite checksums


def _crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC32C_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _crc64nvme(data: bytes) -> int:
    crc = 0xFFFFFFFFFFFFFFFF
    for b in data:
        crc = _CRC64_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFFFFFFFFFF


def _table(poly: int, bits: int) -> list[int]:
    out = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        out.append(c & ((1 << bits) - 1))
    return out


_CRC32C_TABLE = _table(0x82F63B78, 32)
_CRC64_TABLE = _table(0x9A6C9329AC4BC9B5, 64)


def _composite(algorithm: str, digests: list[bytes]) -> str | None:
    """S3's checksum-of-checksums over the (small) part digests. Never the data."""
    joined = b"".join(digests)
    if algorithm == "crc32":
        raw = zlib.crc32(joined).to_bytes(4, "big")
    elif algorithm == "crc32c":
        raw = _crc32c(joined).to_bytes(4, "big")
    elif algorithm == "sha1":
        raw = hashlib.sha1(joined).digest()
    elif algorithm == "sha256":
        raw = hashlib.sha256(joined).digest()
    elif algorithm == "crc64nvme":
        raw = _crc64nvme(joined).to_bytes(8, "big")
    else:
        return None
    return f"{base64.b64encode(raw).decode()}-{len(digests)}"


# ------------------------------------------------------------------------ protocol

_HEAD, _BODY, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_CRLF, _TRAILERS = range(6)


class SinkProtocol(asyncio.BufferedProtocol):
    def __init__(self, state: State) -> None:
        self.state = state
        self.buf = bytearray(RECV_BUFFER)
        self.view = memoryview(self.buf)
        self.transport: asyncio.Transport | None = None
        self.mode = _HEAD
        self.head = bytearray()
        self.line = bytearray()
        self.left = 0
        self.received = 0
        self.body: bytearray | None = None
        self.request: tuple[str, str, dict[str, str]] | None = None
        self.close_after = False
        #: The synthetic body being written: (next offset, bytes left), and whether the
        #: transport asked to pause.
        self.sending: tuple[int, int] | None = None
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        # Let the kernel's buffer, not Python's, absorb most of each write.
        transport.set_write_buffer_limits(high=WRITE_HIGH)  # type: ignore[attr-defined]
        tls = transport.get_extra_info("ssl_object")
        if tls is not None:
            name = f"{tls.version()} {tls.cipher()[0]}"
            self.state.tls[name] = self.state.tls.get(name, 0) + 1

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._pump()

    def _pump(self) -> None:
        """Write the synthetic body until it is done or the transport is full."""
        while self.sending is not None and not self.paused and self.transport is not None:
            at, left = self.sending
            n = min(left, MAX_SLICE)
            self.sending = (at + n, left - n) if left > n else None
            self.state.sent_bytes += n
            self.transport.write(pattern_slice(at, n))
        if self.sending is None and self.close_after and self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.view

    def buffer_updated(self, nbytes: int) -> None:
        try:
            self._consume(nbytes)
        except Exception as exc:  # a malformed request: answer 400 and hang up
            self.state.errors.append(f"{type(exc).__name__}: {exc}")
            self._respond(400, b"", {}, close=True)

    # The parser works on self.buf[pos:nbytes] in place; nothing is copied but headers.
    def _consume(self, n: int) -> None:
        buf = self.buf
        pos = 0
        while pos < n:
            mode = self.mode
            if mode == _BODY:
                pos = self._take_body(pos, n)
                if self.left == 0:
                    self._finish()
            elif mode == _HEAD:
                if not self.head:
                    idx = buf.find(b"\r\n\r\n", pos, n)
                    if idx >= 0:
                        head = bytes(buf[pos:idx])
                        pos = idx + 4
                        self._on_head(head)
                        continue
                    self.head += self.view[pos:n]
                    pos = n
                else:
                    take = min(n - pos, MAX_HEAD)
                    before = len(self.head)
                    self.head += self.view[pos : pos + take]
                    idx = self.head.find(b"\r\n\r\n", max(0, before - 3))
                    if idx >= 0:
                        head = bytes(self.head[:idx])
                        pos += idx + 4 - before
                        self.head.clear()
                        self._on_head(head)
                        continue
                    pos += take
                if len(self.head) > MAX_HEAD:
                    raise ValueError("request head too large")
            elif mode in (_CHUNK_SIZE, _CHUNK_CRLF, _TRAILERS):
                idx = buf.find(b"\n", pos, n)
                if idx < 0:
                    self.line += self.view[pos:n]
                    pos = n
                    if len(self.line) > MAX_HEAD:
                        raise ValueError("chunk line too long")
                    continue
                self.line += self.view[pos:idx]
                pos = idx + 1
                line = bytes(self.line).rstrip(b"\r")
                self.line.clear()
                if mode == _CHUNK_SIZE:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                    if size == 0:
                        self.mode = _TRAILERS
                    else:
                        self.left = size
                        self.mode = _CHUNK_DATA
                elif mode == _CHUNK_CRLF:
                    self.mode = _CHUNK_SIZE
                elif not line:  # the empty line after the trailers
                    self._finish()
            else:  # _CHUNK_DATA
                pos = self._take_body(pos, n)
                if self.left == 0:
                    self.mode = _CHUNK_CRLF

    def _take_body(self, pos: int, n: int) -> int:
        """Count (and keep, if wanted) the body bytes in buf[pos:n]; the new position."""
        take = min(self.left, n - pos)
        if self.body is not None:
            self.body += self.view[pos : pos + take]
        self.left -= take
        self.received += take
        return pos + take

    def _on_head(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        self.request = (method, target, headers)
        self.received = 0
        self.close_after = headers.get("connection", "").lower() == "close"
        length = int(headers.get("content-length", "0") or 0)
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        keep = method == "POST" and (chunked or length <= KEEP_BODY_LIMIT)
        self.body = bytearray() if keep else None
        if headers.get("expect", "").lower() == "100-continue" and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if chunked:
            self.mode = _CHUNK_SIZE
        elif length > 0:
            self.left = length
            self.mode = _BODY
        else:
            self._finish()

    def _finish(self) -> None:
        self.mode = _HEAD
        assert self.request is not None
        method, target, headers = self.request
        body = bytes(self.body) if self.body is not None else b""
        self.body = None
        received = self.received
        self.state.body_bytes += received
        try:
            status, payload, extra = route(self.state, method, target, headers, received, body)
        except Exception as exc:
            self.state.errors.append(f"{method} {target}: {type(exc).__name__}: {exc}")
            status, payload, extra = _error(500, "InternalError", str(exc))
        self._respond(status, payload, extra, close=self.close_after)

    def _respond(self, status: int, payload: bytes | Body, extra: dict[str, str], *,
                 close: bool) -> None:
        if self.transport is None:
            return
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
                 f"Date: {http_date()}", "Server: s3stream-bench-sink",
                 f"x-amz-request-id: {self.state.counter:016X}"]
        body = payload if isinstance(payload, Body) else None
        if "content-length" not in {k.lower() for k in extra}:
            lines.append(f"Content-Length: {body.length if body else len(payload)}")
        if body is not None:
            lines.append("Content-Type: application/octet-stream")
        elif payload:
            lines.append("Content-Type: application/xml")
        lines.extend(f"{k}: {v}" for k, v in extra.items())
        if close:
            lines.append("Connection: close")
        head = "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n"
        if body is not None:
            # Clients send the next request only after this answer (no pipelining), so
            # one body at a time per connection is all there is.
            self.transport.write(head)
            self.close_after = close
            if body.length:
                self.sending = (body.start, body.length)
            self._pump()
            return
        self.transport.write(head + payload)  # type: ignore[operator]
        if close:
            self.transport.close()


# -------------------------------------------------------------------------- routing


def _error(status: int, code: str, message: str) -> tuple[int, bytes, dict[str, str]]:
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{message}</Message><RequestId>sink</RequestId></Error>").encode()
    return status, body, {}


def _xml(body: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + body).encode()


_NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


def route(state: State, method: str, target: str, headers: dict[str, str], received: int,
          body: bytes) -> tuple[int, bytes | Body, dict[str, str]]:
    split = urlsplit(target)
    query = dict(parse_qsl(split.query, keep_blank_values=True))
    path = unquote(split.path)
    bucket, _, key = path.lstrip("/").partition("/")
    if bucket == STATS_BUCKET:
        state.count("Stats")
        if key == "reset":
            state.objects.clear()
            state.uploads.clear()
        payload = json.dumps(state.stats(query.get("key"))).encode()
        return 200, payload, {"Content-Type": "application/json"}
    # aws-chunked bodies carry signatures inline: the object's bytes are the decoded length.
    size = received
    if "aws-chunked" in headers.get("content-encoding", "") and \
            "x-amz-decoded-content-length" in headers:
        size = int(headers["x-amz-decoded-content-length"])
    checksums = {k: v for k, v in headers.items() if k.startswith("x-amz-checksum-")
                 and k != "x-amz-checksum-type" and k != "x-amz-checksum-algorithm"}
    if method == "PUT" and "partNumber" in query and "uploadId" in query:
        state.count("UploadPart")
        up = state.uploads.get(query["uploadId"])
        if up is None:
            return _error(404, "NoSuchUpload", "The specified upload does not exist.")
        number = int(query["partNumber"])
        etag = _etag(query["uploadId"], number, size)
        up.parts[number] = (size, etag, checksums)
        return 200, b"", {"ETag": etag, **checksums}
    if method == "POST" and "uploads" in query:
        state.count("CreateMultipartUpload")
        upload_id = state.next_id()
        state.uploads[upload_id] = Upload(bucket, key)
        return 200, _xml(
            f"<InitiateMultipartUploadResult {_NS}><Bucket>{bucket}</Bucket>"
            f"<Key>{_esc(key)}</Key><UploadId>{upload_id}</UploadId>"
            "</InitiateMultipartUploadResult>"), {}
    if method == "POST" and "uploadId" in query:
        state.count("CompleteMultipartUpload")
        return _complete(state, bucket, key, query["uploadId"], headers, body)
    if method == "DELETE" and "uploadId" in query:
        state.count("AbortMultipartUpload")
        if state.uploads.pop(query["uploadId"], None) is None:
            return _error(404, "NoSuchUpload", "The specified upload does not exist.")
        return 204, b"", {}
    if method == "PUT" and key:
        state.count("PutObject")
        etag = _etag(bucket, key, size, state.next_id())
        state.objects[key] = {"size": size, "parts": 0, "etag": etag}
        return 200, b"", {"ETag": etag, **checksums}
    if method in ("HEAD", "GET") and key:
        return _read(state, method, key, headers)
    if method == "PUT" and not key:  # CreateBucket
        state.count("CreateBucket")
        return 200, b"", {}
    state.count("Other")
    return _error(405, "MethodNotAllowed", f"the sink does not do {method} {target}")


def _object(state: State, key: str) -> tuple[int, str] | None:
    """(size, ETag) of a key: ``__gen__/<size>``, or one uploaded before."""
    if key.startswith(GEN_PREFIX):
        try:
            size = int(key[len(GEN_PREFIX):])
        except ValueError:
            return None
        return size, _etag("gen", size)
    obj = state.objects.get(key)
    return (obj["size"], obj["etag"]) if obj is not None else None


def _read(state: State, method: str, key: str, headers: dict[str, str]
          ) -> tuple[int, bytes | Body, dict[str, str]]:
    state.count("HeadObject" if method == "HEAD" else "GetObject")
    found = _object(state, key)
    if found is None:
        if method == "HEAD":
            return 404, b"", {"Content-Length": "0"}
        return _error(404, "NoSuchKey", "The specified key does not exist.")
    size, etag = found
    meta = {"ETag": etag, "Last-Modified": LAST_MODIFIED, "Accept-Ranges": "bytes"}
    match = headers.get("if-match")
    if match is not None and match.strip() not in ("*", etag, etag.strip('"')):
        if method == "HEAD":
            return 412, b"", {"Content-Length": "0"}
        return _error(412, "PreconditionFailed",
                      "At least one of the pre-conditions you specified did not hold")
    if method == "HEAD":
        return 200, b"", {"Content-Length": str(size), **meta}
    spec = headers.get("range")
    if spec is None:
        return 200, Body(0, size), meta
    m = _RANGE_RE.fullmatch(spec)
    if m is None or not (m.group(1) or m.group(2)):
        return 200, Body(0, size), meta  # S3 ignores a Range it cannot parse
    first, last = m.group(1), m.group(2)
    if first:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
    else:  # bytes=-n: the last n bytes
        start, end = max(0, size - int(last)), size - 1
    if start >= size or (first and last and int(last) < start):
        status, payload, _ = _error(416, "InvalidRange",
                                    "The requested range is not satisfiable")
        return status, payload, {"Content-Range": f"bytes */{size}"}
    return 206, Body(start, end - start + 1), {
        **meta, "Content-Range": f"bytes {start}-{end}/{size}"}


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _complete(state: State, bucket: str, key: str, upload_id: str, headers: dict[str, str],
              body: bytes) -> tuple[int, bytes, dict[str, str]]:
    up = state.uploads.get(upload_id)
    if up is None:
        return _error(404, "NoSuchUpload", "The specified upload does not exist.")
    numbers = [int(m) for m in _PART_RE.findall(body)]
    etags = [m.decode().strip('"').replace("&quot;", "") for m in _ETAG_RE.findall(body)]
    if not numbers:
        return _error(400, "MalformedXML", "no parts listed")
    if numbers != sorted(set(numbers)):
        return _error(400, "InvalidPartOrder", "parts must be listed in ascending order")
    total = 0
    digests: dict[str, list[bytes]] = {}
    for i, number in enumerate(numbers):
        part = up.parts.get(number)
        if part is None:
            return _error(400, "InvalidPart", f"part {number} was not uploaded")
        size, etag, checksums = part
        if i < len(etags) and etags[i] != etag.strip('"'):
            return _error(400, "InvalidPart", f"part {number}: ETag {etags[i]} != {etag}")
        if size < MIN_PART and i != len(numbers) - 1:
            return _error(400, "EntityTooSmall", f"part {number} is {size} bytes")
        total += size
        for name, value in checksums.items():
            digests.setdefault(name, []).append(base64.b64decode(value))
    del state.uploads[upload_id]
    etag = '"' + hashlib.md5(upload_id.encode()).hexdigest() + f'-{len(numbers)}"'
    state.objects[key] = {"size": total, "parts": len(numbers), "etag": etag}
    extra = ""
    # A full-object checksum the client sent on Complete is echoed back (it cannot be
    # recomputed without the data); otherwise the composite over the parts' checksums.
    for name, value in headers.items():
        if name.startswith("x-amz-checksum-") and name not in ("x-amz-checksum-type",
                                                                "x-amz-checksum-algorithm"):
            algorithm = name.removeprefix("x-amz-checksum-")
            extra += f"<Checksum{algorithm.upper()}>{value}</Checksum{algorithm.upper()}>"
            digests.pop(name, None)
    for name, values in digests.items():
        if len(values) != len(numbers):
            continue
        algorithm = name.removeprefix("x-amz-checksum-")
        composite = _composite(algorithm, values)
        if composite is not None:
            extra += f"<Checksum{algorithm.upper()}>{composite}</Checksum{algorithm.upper()}>"
    return 200, _xml(
        f"<CompleteMultipartUploadResult {_NS}><Location>http://sink/{bucket}/{_esc(key)}"
        f"</Location><Bucket>{bucket}</Bucket><Key>{_esc(key)}</Key><ETag>{_esc(etag)}</ETag>"
        f"{extra}</CompleteMultipartUploadResult>"), {}


# ----------------------------------------------------------------------------- main


async def serve(host: str, port: int, certfile: str | None = None) -> None:
    loop = asyncio.get_running_loop()
    state = State()
    context = None
    if certfile:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certfile)
    server = await loop.create_server(lambda: SinkProtocol(state), host, port, backlog=256,
                                      ssl=context)
    bound = server.sockets[0].getsockname()[1]
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(json.dumps({"port": bound, "pid": os.getpid(), "loop": type(loop).__module__,
                      "tls": bool(context)}), flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto",
                        help="uvloop (when installed) costs the sink less CPU per request")
    parser.add_argument("--certfile", default=None,
                        help="PEM with the certificate chain and key: serve HTTPS")
    args = parser.parse_args(argv)
    use_uvloop = args.loop == "uvloop"
    if args.loop == "auto":
        try:
            import uvloop
            use_uvloop = True
        except ImportError:
            pass
    if use_uvloop:
        import uvloop
        uvloop.run(serve(args.host, args.port, args.certfile))
    else:
        asyncio.run(serve(args.host, args.port, args.certfile))


if __name__ == "__main__":
    sys.exit(main())
