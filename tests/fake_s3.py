"""An in-process, fault-injecting fake S3 for tests.

``FakeS3`` is a small aiohttp web server on 127.0.0.1 (an ephemeral port) that keeps
one bucket in memory and implements what a streaming upload touches: PutObject,
CreateMultipartUpload, UploadPart, CompleteMultipartUpload, AbortMultipartUpload,
ListParts, ListMultipartUploads, HeadObject, GetObject and DeleteObject.

It is a test *peer*, so it records and checks what a client really sent:

* the request target exactly as received (``Recorded.raw_path``): the key is
  percent-decoded from it here, so nothing (aiohttp, yarl) normalises ``.``, ``..``
  or ``//`` on the way;
* SigV4, verified independently of s3stream's signer over the raw path *as it came
  off the wire* (a client that signs one path and sends another gets 403
  ``SignatureDoesNotMatch``), and ``x-amz-content-sha256`` against the body received;
* flexible checksums (``x-amz-checksum-crc32c|crc32|sha256``, ``Content-MD5``) against
  the body received (400 ``BadDigest``), echoed back like S3 does; on Complete the
  part list's checksums, and the object's FULL_OBJECT or COMPOSITE checksum;
* how many UploadPart requests are being received at once (``max_in_flight``).

Faults are rules matched in the order they were added, each for ``times`` requests
(``None``: every matching request)::

    fake.fail(op="UploadPart", part=3, times=2, status=503, code="SlowDown")
    fake.fail(op="CompleteMultipartUpload", status=200, code="InternalError")  # 200 + <Error>
    fake.reset(op="UploadPart", part=2, after_bytes=1000)     # read some body, drop the TCP link
    fake.reset(op="CompleteMultipartUpload", after_processing=True)  # do it, lose the answer
    fake.corrupt(op="UploadPart", part=2)                     # flip a body byte "in transit"
    gate = fake.stall(op="UploadPart", part=2)                # hold until gate.release()
    fake.garbage(op="CreateMultipartUpload", body=b"<notxml")
    fake.rewrite(op="CompleteMultipartUpload", body=b"")  # do it, answer another body
    fake.checksums = "reject"       # or "reject-full-object", "ignore": other stores
    await fake.go_down(); await fake.come_back()   # an outage: refused connections

A stall is not terminal: once released, the request goes on to the other rules and
then to normal processing. Synchronise on events, never on sleeps:
``await gate.entered.wait()``, ``await fake.part_started[2].wait()`` (UploadPart
number 2 arrived) or ``await fake.op_started["CompleteMultipartUpload"].wait()``.
Leaving ``async with FakeS3() as fake:`` releases every gate and stops the server.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import ssl
import time
import xml.etree.ElementTree as ET
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import unquote
from xml.sax.saxutils import escape

from aiohttp import web
from multidict import CIMultiDict

try:
    import crc32c as _crc32c
except ImportError:  # pragma: no cover - then CRC32C checksums are accepted unchecked
    _crc32c = None

MiB = 1 << 20
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
#: Bodies up to this size are kept in ``Recorded.body`` (parts are only hashed).
KEEP_BODY = 64 * 1024

_UNRESERVED = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
)
_OPS = frozenset({
    "PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload",
    "AbortMultipartUpload", "ListParts", "ListMultipartUploads", "HeadObject", "GetObject",
    "DeleteObject", "Unknown",
})


def s3_encode(text: str, *, keep_slash: bool = True) -> str:
    """Percent-encode UTF-8 the way S3 wants a path (or a query item): only RFC 3986
    unreserved bytes stay as they are, hex digits are upper case. Written here on
    purpose, independent of s3stream's own encoder."""
    out: list[str] = []
    for byte in text.encode("utf-8"):
        if byte in _UNRESERVED or (keep_slash and byte == 0x2F):
            out.append(chr(byte))
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def _decode(text: str) -> str:
    # unquote, not unquote_plus: in a path (and in S3's query) "+" is a plus.
    return unquote(text, encoding="utf-8", errors="strict")


def parse_query(raw_query: str) -> list[tuple[str, str]]:
    """``a=1&uploads`` -> ``[("a", "1"), ("uploads", "")]``, percent-decoded."""
    pairs: list[tuple[str, str]] = []
    for item in raw_query.split("&") if raw_query else []:
        name, _, value = item.partition("=")
        pairs.append((_decode(name), _decode(value)))
    return pairs


def md5_etag(data: bytes) -> str:
    return '"' + hashlib.md5(data).hexdigest() + '"'


_CHECKSUM_ALGOS = ("crc32c", "crc32", "sha256", "sha1")
_SSE_C_MD5 = "x-amz-server-side-encryption-customer-key-MD5"
_EVERY = ("x-amz-request-payer", "x-amz-expected-bucket-owner")
_XML_NAMES = {"crc32c": "ChecksumCRC32C", "crc32": "ChecksumCRC32", "sha256": "ChecksumSHA256",
              "sha1": "ChecksumSHA1"}


def raw_checksum(algorithm: str, data: bytes) -> bytes | None:
    """The raw digest S3 computes (CRCs as 4 big-endian bytes); None if unavailable."""
    if algorithm == "crc32":
        return zlib.crc32(data).to_bytes(4, "big")
    if algorithm == "crc32c":
        return None if _crc32c is None else int(_crc32c.crc32c(data)).to_bytes(4, "big")
    if algorithm in ("sha256", "sha1", "md5"):
        return hashlib.new(algorithm, data).digest()
    raise ValueError(algorithm)


def b64_checksum(algorithm: str, data: bytes) -> str | None:
    raw = raw_checksum(algorithm, data)
    return None if raw is None else base64.b64encode(raw).decode()


def _xml(root: str, **children: object) -> bytes:
    inner = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in children.items())
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} '
            f'xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{inner}</{root}>').encode()


def error_xml(code: str, message: str = "", request_id: str = "FAKE") -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{escape(code)}</Code>'
            f"<Message>{escape(message)}</Message><RequestId>{escape(request_id)}</RequestId>"
            "</Error>").encode()


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


# --------------------------------------------------------------------------- records


@dataclass
class Recorded:
    """One request as the server received it."""

    seq: int
    method: str
    #: The request target exactly as on the request line (path and query, still encoded).
    raw_path: str
    #: The encoded path part of ``raw_path`` (before ``?``).
    path: str
    #: The encoded query part of ``raw_path`` (after ``?``), exactly as sent.
    raw_query: str
    #: The query, percent-decoded, in the order sent.
    query: list[tuple[str, str]]
    headers: CIMultiDict[str]
    op: str
    bucket: str | None
    key: str | None
    part: int | None
    upload_id: str | None
    started: float
    ended: float | None = None
    #: Body bytes actually received (less than Content-Length when the link dropped).
    body_size: int = 0
    body_sha256: str | None = None
    #: The body itself when it was small (<= KEEP_BODY), else None.
    body: bytes | None = None
    #: The status answered; None when the connection was dropped or never answered.
    status: int | None = None
    #: "ok", "fault:<kind>", "error:<Code>", "reset", "client-gone".
    outcome: str = ""
    signature_ok: bool | None = None
    #: The region a request was signed for when the fake refused it as the wrong one.
    region_refused: str | None = None
    #: Set once the server has finished with the request (answered or dropped it).
    done: asyncio.Event = field(default_factory=asyncio.Event, repr=False, compare=False)

    def query_dict(self) -> dict[str, str]:
        return dict(self.query)


@dataclass
class Rule:
    """A fault, matched by operation (and part number / key) for ``times`` requests."""

    kind: str  # "fail" | "reset" | "stall" | "garbage"
    op: str
    part: int | None = None
    key: str | None = None
    times: int | None = 1
    status: int = 500
    code: str = "InternalError"
    message: str = "injected by FakeS3"
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    after_bytes: int = 0
    before_body: bool = False
    after_processing: bool = False
    hits: int = 0

    def matches(self, rec: Recorded) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.op != rec.op:
            return False
        if self.part is not None and self.part != rec.part:
            return False
        return self.key is None or self.key == rec.key


class Gate(Rule):
    """A stall: matching requests wait until ``release()``; ``entered`` fires on the first."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(kind="stall", **kwargs)
        self.entered = asyncio.Event()
        self.waiting = 0
        self._released = asyncio.Event()

    def release(self) -> None:
        self._released.set()

    @property
    def released(self) -> bool:
        return self._released.is_set()

    async def hold(self) -> None:
        self.waiting += 1
        self.entered.set()
        try:
            await self._released.wait()
        finally:
            self.waiting -= 1


@dataclass
class _Upload:
    upload_id: str
    key: str
    initiated: str
    parts: dict[int, tuple[str, bytes]] = field(default_factory=dict)
    #: From CreateMultipartUpload: x-amz-checksum-algorithm (lower case) and -type.
    checksum_algorithm: str | None = None
    checksum_type: str | None = None
    #: part number -> base64 checksum sent with (and verified for) that part.
    part_checksums: dict[int, str] = field(default_factory=dict)
    #: From Create: the SSE-C key's MD5 and the every-request headers, which S3 then
    #: requires on the upload's other requests.
    sse_c_md5: str | None = None
    every: dict[str, str] = field(default_factory=dict)


class _Dropped(Exception):
    """The client went away while we were reading its body."""


# ----------------------------------------------------------------------------- server


class FakeS3:
    """``async with FakeS3() as fake:`` -> ``fake.endpoint`` is ``http://127.0.0.1:<port>``
    (``https://`` with ``ssl_context=``)."""

    def __init__(
        self,
        *,
        bucket: str = "bucket",
        access_key: str = "AK",
        secret_key: str = "SK",
        region: str = "us-east-1",
        verify_signatures: bool = True,
        min_part_size: int = 5 * MiB,
        checksums: str = "verify",
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.bucket = bucket
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region
        self.verify_signatures = verify_signatures
        self.min_part_size = min_part_size
        #: Serves HTTPS with this context (``https://`` endpoint) when given.
        self.ssl_context = ssl_context
        #: How the store treats ``x-amz-checksum-*``: "verify" (like S3), "reject" (any
        #: checksum header is refused with ``reject_with``), "reject-full-object" (only
        #: ``x-amz-checksum-type: FULL_OBJECT`` is), or "ignore" (as if never sent).
        self.checksums = checksums
        self.reject_with: tuple[int, str] = (400, "InvalidArgument")
        #: Answer requests signed for another region as S3 does: "301" (PermanentRedirect
        #: with ``x-amz-bucket-region``) or "400" (AuthorizationHeaderMalformed naming it).
        self.wrong_region: str | None = None
        self.requests: list[Recorded] = []
        self.objects: dict[str, bytes] = {}
        #: key -> {algorithm: stored checksum} (what HeadObject reports with checksum mode).
        self.object_checksums: dict[str, dict[str, str]] = {}
        self.object_etags: dict[str, str] = {}
        self.uploads: dict[str, _Upload] = {}
        self.completed_uploads: set[str] = set()
        self.aborted_uploads: set[str] = set()
        self.rules: list[Rule] = []
        self.in_flight: Counter[str] = Counter()
        self.max_in_flight_by_op: Counter[str] = Counter()
        #: part number -> set when an UploadPart for it arrives (before its body is read).
        self.part_started: defaultdict[int, asyncio.Event] = defaultdict(asyncio.Event)
        #: operation name -> set when a request for it arrives.
        self.op_started: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._seq = itertools.count(1)
        self._ids = itertools.count(1)
        self._runner: web.ServerRunner | None = None
        self._site: web.TCPSite | None = None
        self._port = 0
        self._transports: set[Any] = set()
        self.endpoint = ""

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> FakeS3:
        server = web.Server(self._handle, access_log=None)
        self._runner = web.ServerRunner(server, shutdown_timeout=2.0)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await self._site.start()
        host, self._port = self._runner.addresses[0][:2]
        scheme = "https" if self.ssl_context is not None else "http"
        self.endpoint = f"{scheme}://{host}:{self._port}"
        return self

    async def go_down(self) -> None:
        """An outage, like a killed server: stop listening (new connections are refused)
        and drop every open connection at once."""
        assert self._site is not None
        site, self._site = self._site, None
        await site.stop()
        for transport in list(self._transports):
            transport.abort()
        self._transports.clear()

    async def come_back(self) -> None:
        """Listen again on the same port, with everything stored kept (a restart)."""
        assert self._runner is not None and self._site is None
        self._site = web.TCPSite(self._runner, "127.0.0.1", self._port, reuse_address=True,
                                 ssl_context=self.ssl_context)
        await self._site.start()

    async def stop(self) -> None:
        for rule in self.rules:
            if isinstance(rule, Gate):
                rule.release()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> FakeS3:
        return await self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()

    # ------------------------------------------------------------------ views

    @property
    def open_uploads(self) -> set[str]:
        return set(self.uploads)

    @property
    def max_in_flight(self) -> int:
        """The most UploadPart requests being received at the same time."""
        return self.max_in_flight_by_op["UploadPart"]

    def ops(self) -> list[str]:
        return [r.op for r in self.requests]

    def requests_for(self, op: str, part: int | None = None) -> list[Recorded]:
        return [r for r in self.requests if r.op == op and (part is None or r.part == part)]

    def part_counts(self) -> Counter[int]:
        """How often each part number was received."""
        return Counter(r.part for r in self.requests if r.op == "UploadPart" and r.part)

    # ------------------------------------------------------------------ fault rules

    def _add(self, rule: Rule) -> Rule:
        if rule.op not in _OPS:
            raise ValueError(f"unknown operation {rule.op!r}")
        self.rules.append(rule)
        return rule

    def fail(self, *, op: str, part: int | None = None, key: str | None = None,
             times: int | None = None, status: int = 500, code: str = "InternalError",
             message: str = "injected by FakeS3", headers: dict[str, str] | None = None,
             before_body: bool = False) -> Rule:
        """Answer with an S3 ``<Error>``. ``status=200`` sends ``200 OK`` and some
        whitespace first, then the ``<Error>`` (as CompleteMultipartUpload does)."""
        return self._add(Rule("fail", op, part, key, times, status, code, message,
                              dict(headers or {}), before_body=before_body))

    def reset(self, *, op: str, part: int | None = None, key: str | None = None,
              times: int | None = 1, after_bytes: int = 0,
              after_processing: bool = False) -> Rule:
        """Read ``after_bytes`` of the body, then abort the TCP connection. With
        ``after_processing`` the whole request is carried out first and only the
        answer is lost."""
        return self._add(Rule("reset", op, part, key, times, after_bytes=after_bytes,
                              after_processing=after_processing))

    def corrupt(self, *, op: str, part: int | None = None, key: str | None = None,
                times: int | None = 1) -> Rule:
        """Flip one byte of the received body before it is checked and stored."""
        return self._add(Rule("corrupt", op, part, key, times))

    def stall(self, *, op: str, part: int | None = None, key: str | None = None,
              times: int | None = None, before_body: bool = False) -> Gate:
        """Hold matching requests (after reading the body unless ``before_body``)."""
        gate = Gate(op=op, part=part, key=key, times=times, before_body=before_body)
        self._add(gate)
        return gate

    def garbage(self, *, op: str, part: int | None = None, key: str | None = None,
                times: int | None = None, body: bytes = b"<notxml",
                status: int = 200, headers: dict[str, str] | None = None) -> Rule:
        """Answer ``status`` with ``body`` verbatim (and do nothing)."""
        return self._add(Rule("garbage", op, part, key, times, status=status,
                              headers=dict(headers or {}), body=body))

    def rewrite(self, *, op: str, body: bytes, part: int | None = None,
                key: str | None = None, times: int | None = None) -> Rule:
        """Carry the request out, then answer with ``body`` instead of the real answer
        (same status and headers): other stores' dialects, empty or truncated bodies."""
        return self._add(Rule("rewrite", op, part, key, times, body=body))

    def release_all(self) -> None:
        for rule in self.rules:
            if isinstance(rule, Gate):
                rule.release()

    # ------------------------------------------------------------------ the handler

    def _classify(self, method: str, key: str | None, q: dict[str, str]) -> str:
        if key is None:
            if method == "GET" and "uploads" in q:
                return "ListMultipartUploads"
            return "Unknown"
        if method == "PUT":
            if "partNumber" in q and "uploadId" in q:
                return "UploadPart"
            return "PutObject"
        if method == "POST":
            if "uploads" in q:
                return "CreateMultipartUpload"
            if "uploadId" in q:
                return "CompleteMultipartUpload"
            return "Unknown"
        if method == "DELETE":
            return "AbortMultipartUpload" if "uploadId" in q else "DeleteObject"
        if method == "GET":
            return "ListParts" if "uploadId" in q else "GetObject"
        if method == "HEAD":
            return "HeadObject"
        return "Unknown"

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        raw = request.raw_path
        path, _, raw_query = raw.partition("?")
        try:
            query = parse_query(raw_query)
            decoded = _decode(path)
        except UnicodeDecodeError:
            query, decoded = [], ""
        bucket, sep, key_part = decoded.removeprefix("/").partition("/")
        key = key_part if sep and key_part else None
        q = dict(query)
        op = self._classify(request.method, key, q)
        part: int | None = None
        if op == "UploadPart":
            try:
                part = int(q["partNumber"])
            except ValueError:
                part = None
        rec = Recorded(
            seq=next(self._seq), method=request.method, raw_path=raw, path=path,
            raw_query=raw_query, query=query, headers=CIMultiDict(request.headers), op=op,
            bucket=bucket or None, key=key, part=part, upload_id=q.get("uploadId"),
            started=time.monotonic(),
        )
        self.requests.append(rec)
        if request.transport is not None:
            self._transports.add(request.transport)
        self.in_flight[op] += 1
        self.max_in_flight_by_op[op] = max(self.max_in_flight_by_op[op], self.in_flight[op])
        self.op_started[op].set()
        if part is not None:
            self.part_started[part].set()
        try:
            return await self._serve(request, rec)
        except _Dropped:
            rec.outcome = "client-gone"
            return web.Response(status=499)
        finally:
            self.in_flight[op] -= 1
            rec.ended = time.monotonic()
            rec.done.set()

    async def _read_body(self, request: web.BaseRequest, rec: Recorded,
                         limit: int | None = None) -> bytes:
        buf = bytearray()
        try:
            while limit is None or len(buf) < limit:
                want = 1 << 16 if limit is None else min(1 << 16, limit - len(buf))
                chunk = await request.content.read(want)
                if not chunk:
                    break
                buf += chunk
                rec.body_size = len(buf)
        except (ConnectionError, asyncio.IncompleteReadError, OSError) as exc:
            raise _Dropped from exc
        except Exception as exc:  # aiohttp's own payload errors
            if type(exc).__module__.startswith("aiohttp"):
                raise _Dropped from exc
            raise
        data = bytes(buf)
        rec.body_sha256 = hashlib.sha256(data).hexdigest()
        rec.body = data if len(data) <= KEEP_BODY else None
        return data

    async def _serve(self, request: web.BaseRequest, rec: Recorded) -> web.StreamResponse:
        # Every matching stall and corruption applies; of the answer-deciding rules
        # (fail, reset, garbage) only the first, and only it spends one of its ``times``.
        gates: list[Gate] = []
        corrupt = False
        terminal: Rule | None = None
        for rule in self.rules:
            if not rule.matches(rec):
                continue
            if isinstance(rule, Gate):
                gates.append(rule)
            elif rule.kind == "corrupt":
                corrupt = True
            elif terminal is None:
                terminal = rule
            else:
                continue
            rule.hits += 1

        for gate in gates:
            if gate.before_body:
                await gate.hold()
        if terminal is not None and terminal.kind == "reset" and not terminal.after_processing:
            await self._read_body(request, rec, limit=terminal.after_bytes)
            rec.outcome = "reset"
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=599)  # never reaches the peer
        if terminal is not None and terminal.kind == "fail" and terminal.before_body:
            return await self._fault(request, rec, terminal)
        body = await self._read_body(request, rec)
        if corrupt and body:
            body = bytes([body[0] ^ 0xFF]) + body[1:]
        for gate in gates:
            if not gate.before_body:
                await gate.hold()
        if terminal is not None and terminal.kind not in ("reset", "rewrite"):
            return await self._fault(request, rec, terminal)
        response = self._process(request, rec, body)
        if terminal is not None and terminal.kind == "rewrite":
            rec.outcome = f"{rec.outcome}+rewritten"
            headers = {k: v for k, v in response.headers.items()
                       if k.lower() not in ("content-length", "transfer-encoding")}
            return web.Response(status=response.status, body=terminal.body, headers=headers)
        if terminal is not None:  # a reset after processing: the answer is lost
            rec.outcome, rec.status = "reset-after-processing", None
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=599)
        return response

    def _process(self, request: web.BaseRequest, rec: Recorded,
                 body: bytes) -> web.StreamResponse:
        problem = self._check_auth(request, rec, body)
        if problem is not None:
            return self._error(rec, *problem)
        if rec.bucket != self.bucket:
            return self._error(rec, 404, "NoSuchBucket", f"no bucket {rec.bucket!r}")
        names = [k.lower() for k in request.headers if k.lower().startswith("x-amz-checksum-")
                 and k.lower() != "x-amz-checksum-mode"]
        if self.checksums == "reject" and names:
            return self._error(rec, *self.reject_with, f"unsupported header {names[0]!r}")
        if self.checksums == "reject-full-object" and \
                request.headers.get("x-amz-checksum-type", "").upper() == "FULL_OBJECT":
            return self._error(rec, *self.reject_with, "FULL_OBJECT is not supported")
        if self.checksums == "ignore":
            request = request.clone(headers=CIMultiDict(
                (k, v) for k, v in request.headers.items() if k.lower() not in names
                and k.lower() != "content-md5"))
        handler = getattr(self, f"_op_{rec.op}", None)
        if handler is None:
            return self._error(rec, 501, "NotImplemented", f"{rec.method} {rec.raw_path}")
        response: web.StreamResponse = handler(request, rec, body)
        return response

    async def _fault(self, request: web.BaseRequest, rec: Recorded,
                     rule: Rule) -> web.StreamResponse:
        rec.outcome = f"fault:{rule.kind}"
        if rule.kind == "garbage":
            rec.status = rule.status
            return web.Response(status=rule.status, body=rule.body, headers=rule.headers)
        if rule.status == 200:
            # S3's late failure: 200 OK, whitespace while it works, then an <Error>.
            resp = web.StreamResponse(status=200, headers={"Content-Type": "application/xml",
                                                           **rule.headers})
            await resp.prepare(request)
            for _ in range(3):
                await resp.write(b" \n")
            await resp.write(error_xml(rule.code, rule.message, f"REQ{rec.seq}"))
            await resp.write_eof()
            rec.status = 200
            return resp
        return self._error(rec, rule.status, rule.code, rule.message, rule.headers)

    def _error(self, rec: Recorded, status: int, code: str, message: str = "",
               headers: dict[str, str] | None = None) -> web.Response:
        rec.status = status
        if not rec.outcome:
            rec.outcome = f"error:{code}"
        body = b"" if rec.method == "HEAD" else error_xml(code, message, f"REQ{rec.seq}")
        if rec.region_refused is not None:
            headers = {"x-amz-bucket-region": self.region, **(headers or {})}
            if code == "AuthorizationHeaderMalformed" and body:
                body = body.replace(b"</Error>",
                                    f"<Region>{self.region}</Region></Error>".encode())
        return web.Response(status=status, body=body, headers={
            "Content-Type": "application/xml", "x-amz-request-id": f"REQ{rec.seq}",
            **(headers or {})})

    def _ok(self, rec: Recorded, status: int = 200, body: bytes = b"",
            headers: dict[str, str] | None = None) -> web.Response:
        rec.status = status
        rec.outcome = rec.outcome or "ok"
        return web.Response(status=status, body=body or None, headers={
            "x-amz-request-id": f"REQ{rec.seq}", **(headers or {})})

    # ------------------------------------------------------------------ SigV4 check

    def _check_auth(self, request: web.BaseRequest, rec: Recorded,
                    body: bytes) -> tuple[int, str, str] | None:
        claimed = request.headers.get("x-amz-content-sha256")
        if claimed not in (None, "UNSIGNED-PAYLOAD") and \
                claimed != hashlib.sha256(body).hexdigest():
            return 400, "XAmzContentSHA256Mismatch", "x-amz-content-sha256 != body"
        if not self.verify_signatures:
            return None
        scope = request.headers.get("Authorization", "").partition("Credential=")[2]
        parts = scope.split(",")[0].split("/")
        if self.wrong_region is not None and len(parts) > 2 and parts[2] != self.region:
            # AWS's two answers to a request signed for another region than the bucket's.
            rec.region_refused = parts[2]
            if self.wrong_region == "400":
                return (400, "AuthorizationHeaderMalformed",
                        f"the region '{parts[2]}' is wrong; expecting '{self.region}'")
            return 301, "PermanentRedirect", "use the bucket's regional endpoint"
        ok, why = self._signature_matches(request, rec)
        rec.signature_ok = ok
        if not ok:
            return 403, "SignatureDoesNotMatch", why
        return None

    def _signature_matches(self, request: web.BaseRequest, rec: Recorded) -> tuple[bool, str]:
        auth = request.headers.get("Authorization", "")
        algorithm, _, rest = auth.partition(" ")
        if algorithm != "AWS4-HMAC-SHA256":
            return False, "no AWS4-HMAC-SHA256 Authorization header"
        fields = dict(item.strip().partition("=")[::2] for item in rest.split(","))
        try:
            access_key, date, region, service, terminal = fields["Credential"].split("/")
            signed = fields["SignedHeaders"].split(";")
            given_signature = fields["Signature"]
        except (KeyError, ValueError):
            return False, "malformed Authorization header"
        if access_key != self.access_key or terminal != "aws4_request":
            return False, "unknown access key"
        if region != self.region or service != "s3":
            return False, "wrong region or service in the credential scope"
        stamp = request.headers.get("x-amz-date", "")
        if not stamp.startswith(date):
            return False, "x-amz-date does not match the credential scope"
        if "host" not in signed or signed != sorted(signed):
            return False, "SignedHeaders must be sorted and include host"
        canonical_headers = ""
        for name in signed:
            values = request.headers.getall(name, [])
            if not values:
                return False, f"signed header {name} is missing"
            canonical_headers += f"{name}:{','.join(' '.join(v.split()) for v in values)}\n"
        canonical_query = "&".join(sorted(
            f"{s3_encode(k, keep_slash=False)}={s3_encode(v, keep_slash=False)}"
            for k, v in rec.query
        ))
        canonical_request = "\n".join((
            rec.method,
            rec.path,  # S3: the path exactly as sent, never normalised nor re-encoded
            canonical_query,
            canonical_headers,
            ";".join(signed),
            request.headers.get("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
        ))
        scope = f"{date}/{region}/{service}/aws4_request"
        string_to_sign = "\n".join((
            "AWS4-HMAC-SHA256", stamp, scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ))
        key = ("AWS4" + self.secret_key).encode()
        for step in (date, region, service, "aws4_request"):
            key = hmac.new(key, step.encode(), hashlib.sha256).digest()
        expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, given_signature):
            return False, f"signature mismatch; canonical request was:\n{canonical_request}"
        return True, ""

    # ------------------------------------------------------------------ operations

    def _carried(self, request: web.BaseRequest, up: _Upload, *,
                 sse_c: bool) -> tuple[int, str, str] | None:
        """What S3 says when a request of an upload lacks what its Create carried."""
        if sse_c and up.sse_c_md5 is not None and \
                request.headers.get(_SSE_C_MD5) != up.sse_c_md5:
            return (400, "InvalidRequest", "The multipart upload initiate requested "
                    "encryption. Subsequent part requests must include the appropriate "
                    "encryption parameters.")
        for name, value in up.every.items():
            if request.headers.get(name) != value:
                return 403, "AccessDenied", f"{name} is required on every request"
        return None

    def _upload_for(self, rec: Recorded) -> _Upload | None:
        up = self.uploads.get(rec.upload_id or "")
        return up if up is not None and up.key == rec.key else None

    def _store(self, key: str, data: bytes, etag: str, checksums: dict[str, str]) -> None:
        self.objects[key] = data
        self.object_etags[key] = etag
        self.object_checksums[key] = checksums

    @staticmethod
    def _body_checksums(request: web.BaseRequest, body: bytes
                        ) -> tuple[dict[str, str], tuple[int, str, str] | None]:
        """Verify every checksum header against the body: ({algo: b64}, problem)."""
        found: dict[str, str] = {}
        md5 = request.headers.get("Content-MD5")
        if md5 is not None and md5 != b64_checksum("md5", body):
            return found, (400, "BadDigest", "Content-MD5 does not match the body")
        for algorithm in _CHECKSUM_ALGOS:
            claimed = request.headers.get(f"x-amz-checksum-{algorithm}")
            if claimed is None:
                continue
            actual = b64_checksum(algorithm, body)
            if actual is not None and claimed != actual:
                return found, (400, "BadDigest",
                               f"x-amz-checksum-{algorithm} does not match the body")
            found[algorithm] = claimed
        return found, None

    def _op_PutObject(self, request: web.BaseRequest, rec: Recorded,
                      body: bytes) -> web.Response:
        assert rec.key is not None
        checksums, problem = self._body_checksums(request, body)
        if problem is not None:
            return self._error(rec, *problem)
        etag = md5_etag(body)
        self._store(rec.key, body, etag, checksums)
        return self._ok(rec, headers={"ETag": etag, **{
            f"x-amz-checksum-{a}": v for a, v in checksums.items()}})

    def _op_CreateMultipartUpload(self, request: web.BaseRequest, rec: Recorded,
                                  body: bytes) -> web.Response:
        assert rec.key is not None
        algorithm = request.headers.get("x-amz-checksum-algorithm")
        if algorithm is not None and algorithm.lower() not in _CHECKSUM_ALGOS:
            return self._error(rec, 400, "InvalidRequest", f"checksum algorithm {algorithm}")
        ctype = request.headers.get("x-amz-checksum-type")
        if ctype not in (None, "FULL_OBJECT", "COMPOSITE") or (
                ctype == "FULL_OBJECT" and (algorithm or "").lower() not in ("crc32", "crc32c")):
            return self._error(rec, 400, "InvalidRequest", f"checksum type {ctype}")
        upload_id = f"fake-upload.{next(self._ids)}_x~y-z"
        self.uploads[upload_id] = _Upload(
            upload_id, rec.key, time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            checksum_algorithm=algorithm.lower() if algorithm else None,
            checksum_type=(ctype or "COMPOSITE") if algorithm else None,
            sse_c_md5=request.headers.get(_SSE_C_MD5),
            every={n: v for n in _EVERY if (v := request.headers.get(n)) is not None},
        )
        return self._ok(rec, body=_xml("InitiateMultipartUploadResult", Bucket=self.bucket,
                                        Key=rec.key, UploadId=upload_id),
                        headers={"Content-Type": "application/xml"})

    def _op_UploadPart(self, request: web.BaseRequest, rec: Recorded,
                       body: bytes) -> web.Response:
        up = self._upload_for(rec)
        if up is None:
            return self._error(rec, 404, "NoSuchUpload", "the upload does not exist")
        if rec.part is None or not 1 <= rec.part <= 10_000:
            return self._error(rec, 400, "InvalidArgument", "partNumber must be 1..10000")
        if (refused := self._carried(request, up, sse_c=True)) is not None:
            return self._error(rec, *refused)
        checksums, problem = self._body_checksums(request, body)
        if problem is not None:
            return self._error(rec, *problem)
        if up.checksum_algorithm is not None:
            sent = checksums.get(up.checksum_algorithm)
            if sent is None:
                return self._error(rec, 400, "InvalidRequest",
                                   f"the upload was created with {up.checksum_algorithm}: "
                                   "the part needs that checksum")
            up.part_checksums[rec.part] = sent
        etag = md5_etag(body)
        up.parts[rec.part] = (etag, body)
        return self._ok(rec, headers={"ETag": etag, **{
            f"x-amz-checksum-{a}": v for a, v in checksums.items()}})

    def _op_CompleteMultipartUpload(self, request: web.BaseRequest, rec: Recorded,
                                    body: bytes) -> web.Response:
        up = self._upload_for(rec)
        if up is None:
            return self._error(rec, 404, "NoSuchUpload", "the upload does not exist")
        if (refused := self._carried(request, up, sse_c=True)) is not None:
            return self._error(rec, *refused)
        try:
            root = ET.fromstring(body)
            listed = [{_local(c.tag): c.text or "" for c in p}
                      for p in root if _local(p.tag) == "Part"]
            numbers = [int(p["PartNumber"]) for p in listed]
            etags = [p["ETag"] for p in listed]
        except (ET.ParseError, KeyError, ValueError):
            return self._error(rec, 400, "MalformedXML", "unreadable part list")
        if _local(root.tag) != "CompleteMultipartUpload" or not listed:
            return self._error(rec, 400, "MalformedXML", "no parts listed")
        if numbers != sorted(set(numbers)):
            return self._error(rec, 400, "InvalidPartOrder", "parts must be ascending")
        algorithm = up.checksum_algorithm
        chunks: list[bytes] = []
        for i, (number, etag, item) in enumerate(zip(numbers, etags, listed, strict=True)):
            stored = up.parts.get(number)
            if stored is None or stored[0].strip('"') != etag.strip('"'):
                return self._error(rec, 400, "InvalidPart", f"part {number} / {etag}")
            if algorithm is not None and \
                    item.get(_XML_NAMES[algorithm]) != up.part_checksums.get(number):
                return self._error(rec, 400, "InvalidPart", f"part {number}: checksum differs")
            if i < len(listed) - 1 and len(stored[1]) < self.min_part_size:
                return self._error(rec, 400, "EntityTooSmall", f"part {number} is too small")
            chunks.append(stored[1])
        data = b"".join(chunks)
        checksums: dict[str, str] = {}
        extra: dict[str, str] = {}
        if algorithm is not None:
            if up.checksum_type == "FULL_OBJECT":
                value = b64_checksum(algorithm, data)
            else:
                raws = [base64.b64decode(up.part_checksums[n]) for n in numbers]
                digest = b64_checksum(algorithm, b"".join(raws))
                value = None if digest is None else f"{digest}-{len(numbers)}"
            claimed = request.headers.get(f"x-amz-checksum-{algorithm}")
            if claimed is not None and value is not None and claimed != value:
                return self._error(rec, 400, "BadDigest", "the object's checksum differs")
            if value is not None:
                checksums[algorithm] = value
                extra = {_XML_NAMES[algorithm]: value, "ChecksumType": up.checksum_type or ""}
        digests = b"".join(hashlib.md5(c).digest() for c in chunks)
        etag = f'"{hashlib.md5(digests).hexdigest()}-{len(chunks)}"'
        self._store(up.key, data, etag, checksums)
        del self.uploads[up.upload_id]
        self.completed_uploads.add(up.upload_id)
        location = f"{self.endpoint}/{self.bucket}/{s3_encode(up.key)}"
        # Like S3, which sends 200 at once and whitespace while it assembles the object.
        return self._ok(rec, body=b" \n" + _xml(
            "CompleteMultipartUploadResult", Location=location, Bucket=self.bucket,
            Key=up.key, ETag=etag, **extra), headers={"Content-Type": "application/xml"})

    def _op_AbortMultipartUpload(self, request: web.BaseRequest, rec: Recorded,
                                 body: bytes) -> web.Response:
        up = self._upload_for(rec)
        if up is None:
            return self._error(rec, 404, "NoSuchUpload", "the upload does not exist")
        if (refused := self._carried(request, up, sse_c=False)) is not None:
            return self._error(rec, *refused)
        del self.uploads[up.upload_id]
        self.aborted_uploads.add(up.upload_id)
        return self._ok(rec, status=204)

    def _op_ListParts(self, request: web.BaseRequest, rec: Recorded,
                      body: bytes) -> web.Response:
        up = self._upload_for(rec)
        if up is None:
            return self._error(rec, 404, "NoSuchUpload", "the upload does not exist")
        items = "".join(
            f"<Part><PartNumber>{n}</PartNumber><ETag>{escape(etag)}</ETag>"
            f"<Size>{len(data)}</Size><LastModified>{up.initiated}</LastModified></Part>"
            for n, (etag, data) in sorted(up.parts.items())
        )
        xml = (f'<?xml version="1.0" encoding="UTF-8"?>\n<ListPartsResult><Bucket>'
               f"{escape(self.bucket)}</Bucket><Key>{escape(up.key)}</Key><UploadId>"
               f"{escape(up.upload_id)}</UploadId><IsTruncated>false</IsTruncated>{items}"
               "</ListPartsResult>")
        return self._ok(rec, body=xml.encode(), headers={"Content-Type": "application/xml"})

    def _op_ListMultipartUploads(self, request: web.BaseRequest, rec: Recorded,
                                 body: bytes) -> web.Response:
        prefix = rec.query_dict().get("prefix", "")
        items = "".join(
            f"<Upload><Key>{escape(u.key)}</Key><UploadId>{escape(u.upload_id)}</UploadId>"
            f"<Initiated>{u.initiated}</Initiated></Upload>"
            for u in sorted(self.uploads.values(), key=lambda u: (u.key, u.upload_id))
            if u.key.startswith(prefix)
        )
        xml = (f'<?xml version="1.0" encoding="UTF-8"?>\n<ListMultipartUploadsResult>'
               f"<Bucket>{escape(self.bucket)}</Bucket><IsTruncated>false</IsTruncated>"
               f"{items}</ListMultipartUploadsResult>")
        return self._ok(rec, body=xml.encode(), headers={"Content-Type": "application/xml"})

    def _object_headers(self, request: web.BaseRequest, key: str) -> dict[str, str]:
        headers = {"ETag": self.object_etags[key]}
        if request.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED":
            for algorithm, value in self.object_checksums.get(key, {}).items():
                headers[f"x-amz-checksum-{algorithm}"] = value
        return headers

    def _op_HeadObject(self, request: web.BaseRequest, rec: Recorded,
                       body: bytes) -> web.StreamResponse:
        data = self.objects.get(rec.key or "")
        if data is None:
            return self._error(rec, 404, "NotFound")
        assert rec.key is not None
        rec.status, rec.outcome = 200, "ok"
        resp = web.StreamResponse(status=200, headers=self._object_headers(request, rec.key))
        resp.content_length = len(data)  # a HEAD answer has the length but no body
        return resp

    def _op_GetObject(self, request: web.BaseRequest, rec: Recorded,
                      body: bytes) -> web.Response:
        data = self.objects.get(rec.key or "")
        if data is None:
            return self._error(rec, 404, "NoSuchKey", "the object does not exist")
        assert rec.key is not None
        return self._ok(rec, body=data, headers=self._object_headers(request, rec.key))

    def _op_DeleteObject(self, request: web.BaseRequest, rec: Recorded,
                         body: bytes) -> web.Response:
        self.objects.pop(rec.key or "", None)
        self.object_etags.pop(rec.key or "", None)
        self.object_checksums.pop(rec.key or "", None)
        return self._ok(rec, status=204)
