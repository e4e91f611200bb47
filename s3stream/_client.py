"""S3Client: the facade. It resolves configuration, checks arguments before any I/O
and builds the engines (``_upload.Upload``) on one shared ``_requester.Requester``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from . import _checksums as cks
from . import _multipart, _objects, _presign
from . import _protocol as proto
from ._checks import (
    DEFAULT,
    check_callable,
    check_concurrency,
    check_count,
    check_mapping,
    check_optional_str,
    check_part_size,
    check_seconds,
    check_upload_id,
    parse_time,
    type_name,
)
from ._download import Download, DownloadOptions
from ._download_file import check_path as check_download_path
from ._download_file import download_to
from ._info import ObjectInfo
from ._memory import MemoryBudget
from ._multipart import ResumeStats
from ._objects import BucketInfo, CommonPrefix, DeleteError, DeleteResult, ObjectSummary
from ._parts import S3_LIMITS, Limits, as_buffer, plan, validate_part_size
from ._presign import PresignedRequest
from ._ranges import check_arguments as check_download_arguments
from ._requester import Requester
from ._retry import Retry
from ._sources import Source, open_source
from ._transport import Transport, check_transport_options, check_user_agent_extra
from ._upload import Progress, Upload, UploadOptions, UploadResult, UploadStats
from .credentials import (
    CredentialProvider,
    Credentials,
    ProviderContext,
    resolve_endpoint,
    resolve_region,
)
from .credentials._chain import StaticProvider, as_provider, resolve_provider
from .credentials._files import read_profile_files, resolve_flag
from .credentials._refresh import RefreshingCredentials
from .exceptions import DeadlineError, S3ResponseError, SourceSizeError, UsageError

if TYPE_CHECKING:
    import aiohttp

__all__ = [
    "BucketInfo",
    "CommonPrefix",
    "DeleteError",
    "DeleteResult",
    "Download",
    "MultipartUploadInfo",
    "ObjectInfo",
    "ObjectSummary",
    "PartInfo",
    "PresignedRequest",
    "Progress",
    "ResumeStats",
    "S3Client",
    "Upload",
    "UploadResult",
    "UploadStats",
]

logger = logging.getLogger("s3stream")


@dataclass(frozen=True, slots=True)
class MultipartUploadInfo:
    """An in-progress multipart upload, as ListMultipartUploads reports it."""

    bucket: str
    key: str
    upload_id: str
    initiated: datetime | None


@dataclass(frozen=True, slots=True)
class PartInfo:
    number: int
    etag: str
    size: int
    last_modified: datetime | None


_ADDRESSING = ("auto", "path", "virtual")


T = TypeVar("T")

#: The bytes all uploads of one client may hold for parts (buffered, in flight, kept for
#: retries): 1 GiB is 25 uploads at full speed with the defaults (4 x 8 MiB in flight plus
#: the part being filled), and a service's part memory stays under it however many run.
DEFAULT_MEMORY_LIMIT = 1 << 30


async def _run_blocking(function: Callable[[], T]) -> T:
    return await asyncio.to_thread(function)


async def _idle_limited(chunks: AsyncIterator[Any], idle: float,
                        where: str) -> AsyncIterator[Any]:
    """``chunks``, failing when the source produces nothing for ``idle`` seconds (a client
    that stopped sending its body must not hold parts forever)."""
    while True:
        try:
            async with asyncio.timeout(idle):
                chunk = await anext(chunks)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise DeadlineError(
                f"{where}: the source produced nothing for source_timeout={idle} s; the "
                "upload was aborted", which="source_timeout", seconds=idle) from None
        yield chunk


class S3Client:
    """An S3 client for streaming uploads.

    Every argument is keyword-only and optional; omitted ones come from the
    environment as AWS's own tools resolve them (see ``_credentials``). Every argument
    is checked here (``UsageError``), and credentials are resolved here: when none are
    found the constructor raises ``NoCredentialsError``, saying where it looked.
    Unsigned requests take ``credentials=Credentials.anonymous()``.
    ``session`` is a caller-owned ``aiohttp.ClientSession`` that is borrowed and
    never closed; without one the client owns (and closes) its own.

    For tests: ``environ`` (a mapping read instead of ``os.environ``), ``clock`` (returns
    the current UTC ``datetime``, for signing and expiry), ``sleep`` (awaited for the
    waits between retries) and ``rand`` (returns a float in [0, 1), for the backoff's
    jitter) replace the process's own. They are not part of the documented API.
    """

    def __init__(
        self,
        *,
        endpoint: str | None = None,
        region: str | None = None,
        credentials: Credentials | None = None,
        session: aiohttp.ClientSession | None = None,
        addressing: str = "auto",
        sign_payload: bool | None = None,
        retry: Retry | None = None,
        connect_timeout: float | None = 10.0,
        stall_timeout: float | None = 60.0,
        abort_timeout: float = 30.0,
        max_connections: int = 64,
        ca_bundle: str | os.PathLike[str] | None = None,
        proxy: str | None = None,
        user_agent_extra: str | None = None,
        checksum: str | None = DEFAULT,
        limits: Limits = S3_LIMITS,
        memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        rand: Callable[[], float] | None = None,
    ) -> None:
        # Every argument is checked before anything is resolved, read or sent.
        endpoint = check_optional_str("endpoint", endpoint)
        region = check_optional_str("region", region)
        # Never shows the value: a tuple or dict passed here holds the secret.
        as_provider(credentials)
        if session is not None:
            from aiohttp import ClientSession  # loaded already: the transport imports it

            if not isinstance(session, ClientSession):
                raise UsageError(
                    f"session must be an aiohttp.ClientSession or None, not {type_name(session)}")
        if not isinstance(addressing, str) or addressing not in _ADDRESSING:
            shown = repr(addressing) if isinstance(addressing, str) else type_name(addressing)
            raise UsageError(f"addressing must be 'auto', 'path' or 'virtual', not {shown}")
        # Exactly True, False or None: a string such as "unsigned" or "false" is truthy
        # and would silently mean the opposite of what it says.
        if sign_payload is not None and not isinstance(sign_payload, bool):
            shown = repr(sign_payload) if isinstance(sign_payload, str | int) \
                else type_name(sign_payload)
            raise UsageError(f"sign_payload must be True, False or None, not {shown}")
        if retry is not None and not isinstance(retry, Retry):
            raise UsageError(f"retry must be an s3stream.Retry or None, not {type_name(retry)}")
        check_seconds("connect_timeout", connect_timeout, optional=True)
        check_seconds("stall_timeout", stall_timeout, optional=True)
        check_seconds("abort_timeout", abort_timeout, optional=False)
        check_count("max_connections", max_connections)
        algorithm = (cks.default_algorithm() if checksum is DEFAULT
                     else cks.validate_algorithm(checksum))
        if not isinstance(limits, Limits):
            raise UsageError(f"limits must be an s3stream.Limits, not {type_name(limits)}")
        if environ is not None and not isinstance(environ, Mapping):
            raise UsageError(f"environ must be a mapping (such as os.environ) or None, "
                             f"not {type_name(environ)}")
        check_callable("clock", clock)
        check_callable("sleep", sleep)
        check_callable("rand", rand)
        ca_bundle, proxy = check_transport_options(session=session, ca_bundle=ca_bundle,
                                                   proxy=proxy)
        check_user_agent_extra(user_agent_extra)

        env = os.environ if environ is None else environ
        # The shared files are read once here, for every setting they may hold.
        files = read_profile_files(env)
        self.region = resolve_region(region, env, files)
        # No network I/O here: static credentials are taken as they are, anything else
        # (STS, SSO, metadata services) is the chain's job on the first request. When no
        # source at all applies, NoCredentialsError is raised now, never anonymous.
        provider = resolve_provider(credentials, env, files)
        #: What requests are signed with: static ``Credentials`` (``anonymous()`` for
        #: unsigned requests), or the provider that finds and refreshes them.
        self.credentials: Credentials | CredentialProvider = (
            provider.credentials if isinstance(provider, StaticProvider) else provider)
        self._endpoint = proto.Endpoint.parse(
            resolve_endpoint(endpoint, env, files), region=self.region, addressing=addressing,
            dualstack=resolve_flag("AWS_USE_DUALSTACK_ENDPOINT", "use_dualstack_endpoint", env,
                                   files),
            fips=resolve_flag("AWS_USE_FIPS_ENDPOINT", "use_fips_endpoint", env, files),
        )
        self._sign_payload = (not self._endpoint.is_https) if sign_payload is None \
            else sign_payload
        self.retry = retry or Retry()
        self.limits = limits
        self.checksum = algorithm
        # An explicit choice is strict; the default gives way on stores that refuse it.
        self._checksum_explicit = checksum is not DEFAULT
        self._abort_timeout = abort_timeout
        transport = Transport(session, connect_timeout=connect_timeout,
                              stall_timeout=stall_timeout, max_connections=max_connections,
                              environ=env, ca_bundle=ca_bundle, proxy=proxy,
                              user_agent_extra=user_agent_extra)
        self._requester = requester = Requester(
            endpoint=self._endpoint, region=self.region,
            credentials=RefreshingCredentials(provider, ProviderContext(
                environ=env, fetch=transport.fetch, now=lambda: requester.now(),
                run_blocking=_run_blocking)),
            sign_payload=self._sign_payload, retry=self.retry, transport=transport,
            clock=clock, sleep=sleep, rand=rand,
            budget=None if memory_limit is None else MemoryBudget(memory_limit),
        )

    def __repr__(self) -> str:
        return (f"S3Client(endpoint={self.endpoint!r}, region={self.region!r}, "
                f"credentials={self.credentials!r})")

    @property
    def endpoint(self) -> str:
        return self._endpoint.url(None, None, ())

    async def __aenter__(self) -> S3Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._requester.aclose()

    # ------------------------------------------------------------------- uploads

    def _options(
        self,
        bucket: str,
        key: str,
        *,
        concurrency: int,
        content_type: str | None,
        metadata: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        checksum: str | None,
        if_none_match: str | None,
        if_match: str | None,
        size: int | None = None,
        max_size: int | None = None,
        progress: Callable[[Progress], object] | None = None,
    ) -> UploadOptions:
        """Every argument of an upload, checked before any I/O."""
        check_optional_str("content_type", content_type)
        if size is not None and (isinstance(size, bool) or not isinstance(size, int)
                                 or size < 0):
            raise UsageError(f"size must be an int >= 0 (bytes) or None, not {size!r}")
        if max_size is not None:
            check_count("max_size", max_size)
        check_callable("progress", progress)
        if size is not None and max_size is not None and size > max_size:
            raise SourceSizeError(
                f"size={size} is more than max_size={max_size}: refused before anything "
                "was sent", limit=max_size, produced=0)
        check_mapping("metadata", metadata)
        check_mapping("headers", headers)
        algorithm = self.checksum if checksum is DEFAULT else cks.validate_algorithm(checksum)
        strict = checksum is not DEFAULT or self._checksum_explicit
        if if_none_match is not None and if_none_match != "*":
            shown = "" if isinstance(if_none_match, str) else f", not {type_name(if_none_match)}"
            raise UsageError('if_none_match supports only "*" (create the object only if '
                             f"absent) or None{shown}")
        if if_none_match is not None and if_match is not None:
            raise UsageError("pass if_none_match or if_match, not both")
        conditions: list[tuple[str, str]] = []
        if if_none_match is not None:
            conditions.append(("If-None-Match", "*"))
        if if_match is not None:
            if not isinstance(if_match, str) or not if_match or any(c in if_match for c in "\r\n"):
                raise UsageError("if_match must be an ETag string without line breaks")
            conditions.append(("If-Match", if_match))
        object_headers = proto.build_object_headers(
            content_type=content_type, metadata=metadata, extra_headers=headers)
        part_headers, every_headers = proto.carried_headers(object_headers)
        return UploadOptions(
            bucket=proto.validate_bucket(bucket),
            key=proto.validate_key(key),
            concurrency=check_concurrency(concurrency),
            object_headers=object_headers,
            part_headers=part_headers,
            every_headers=every_headers,
            algorithm=algorithm,
            conditions=tuple(conditions),
            abort_timeout=self._abort_timeout,
            strict_checksum=strict and algorithm is not None,
            size=size,
            max_size=max_size,
            progress=progress,
        )

    def open_upload(
        self,
        bucket: str,
        key: str,
        *,
        part_size: int | None = None,
        concurrency: int = 4,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        checksum: str | None = DEFAULT,
        if_none_match: str | None = None,
        if_match: str | None = None,
        size: int | None = None,
        max_size: int | None = None,
        progress: Callable[[Progress], object] | None = None,
    ) -> Upload:
        """A push-style upload: ``async with s3.open_upload(b, k) as up: await up.write(...)``.

        A clean exit completes the upload; an exception or cancellation inside the
        block aborts it and the caller's exception propagates unchanged. The keyword
        arguments mean what they mean for ``upload()``.
        """
        options = self._options(
            bucket, key, concurrency=concurrency, content_type=content_type,
            metadata=metadata, headers=headers, checksum=checksum,
            if_none_match=if_none_match, if_match=if_match, size=size, max_size=max_size,
            progress=progress)
        return Upload(self._requester, options,
                      plan(size=size, part_size=check_part_size(part_size),
                           limits=self.limits))

    async def upload(
        self,
        bucket: str,
        key: str,
        source: Source,
        *,
        part_size: int | None = None,
        concurrency: int = 4,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        checksum: str | None = DEFAULT,
        if_none_match: str | None = None,
        if_match: str | None = None,
        size: int | None = None,
        max_size: int | None = None,
        progress: Callable[[Progress], object] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - a typed DeadlineError, after the abort
        source_timeout: float | None = None,
    ) -> UploadResult:
        """Upload ``source`` to ``s3://bucket/key`` and return what S3 stored.

        ``source`` is an async iterable of bytes-like chunks, bytes-like data, a file
        path, or a binary file object (read in a worker thread). ``part_size=None``
        picks the size (growing for unknown lengths); ``checksum`` is ``"crc32c"``,
        ``"crc32"``, ``"sha256"``, ``"md5"`` or None (default: the client's);
        ``if_none_match="*"`` creates the object only if it does not exist and
        ``if_match=etag`` replaces it only if unchanged. ``size`` is the length the
        source will produce (an HTTP ``Content-Length``): parts are planned for it and
        a source that produces more or fewer bytes fails (``SourceSizeError``) and is
        aborted; ``max_size`` fails the upload the moment the source exceeds it.
        ``progress(Progress)`` is called after each part. ``timeout`` bounds the whole
        upload and ``source_timeout`` each wait for the source's next chunk
        (``DeadlineError``). Arguments are checked before any I/O. On any failure or
        cancellation the multipart upload is aborted before the error propagates.
        """
        options = self._options(
            bucket, key, concurrency=concurrency, content_type=content_type,
            metadata=metadata, headers=headers, checksum=checksum,
            if_none_match=if_none_match, if_match=if_match, size=size, max_size=max_size,
            progress=progress)
        part_size = check_part_size(part_size)
        check_seconds("timeout", timeout, optional=True)
        check_seconds("source_timeout", source_timeout, optional=True)
        # A path is opened (and its size read) in a worker thread, still before any request.
        chunks, known, close = await open_source(source)
        try:
            if size is not None and known is not None and size != known:
                raise UsageError(f"size={size}, but the source holds {known} bytes")
            if max_size is not None and known is not None and known > max_size:
                raise SourceSizeError(
                    f"the source holds {known} bytes, more than max_size={max_size}: refused "
                    "before anything was sent", limit=max_size, produced=known)
            up = Upload(self._requester, options,
                        plan(size=size if size is not None else known, part_size=part_size,
                             limits=self.limits))
            deadline = asyncio.timeout(timeout)
            try:
                if source_timeout is not None:
                    chunks = _idle_limited(chunks, source_timeout, f"s3://{bucket}/{key}")
                async with deadline, up:
                    await up._write_all(chunks)  # up.write() of each chunk, batched
            except TimeoutError as exc:
                if isinstance(exc, DeadlineError) or not deadline.expired():
                    raise
                raise DeadlineError(
                    f"s3://{bucket}/{key}: the upload did not finish within timeout={timeout} "
                    "s; it was aborted", which="timeout", seconds=float(timeout or 0)) from None
            assert up.result is not None
            return up.result
        finally:
            await close()

    # ------------------------------------------------------------------ downloads
    # download() and download_to(): thin calls into the download engine (_download.py).

    def _download_options(self, bucket: str, key: str, *, offset: int, length: int | None,
                          version_id: str | None, part_size: int | None, concurrency: int,
                          if_match: str | None, checksum: bool) -> DownloadOptions:
        """Every argument of a download, checked before any I/O."""
        offset, length, part_size, concurrency = check_download_arguments(
            offset=offset, length=length, part_size=part_size, concurrency=concurrency,
            version_id=version_id, if_match=if_match, checksum=checksum)
        return DownloadOptions(
            bucket=proto.validate_bucket(bucket), key=proto.validate_key(key), offset=offset,
            length=length, part_size=part_size, concurrency=concurrency,
            version_id=version_id, if_match=if_match, checksum=checksum)

    def download(
        self,
        bucket: str,
        key: str,
        *,
        offset: int = 0,
        length: int | None = None,
        version_id: str | None = None,
        part_size: int | None = None,
        concurrency: int = 4,
        if_match: str | None = None,
        checksum: bool = True,
    ) -> Download:
        """Stream ``s3://bucket/key`` (or ``length`` bytes from ``offset``) as bytes chunks,
        in order, from ranged GETs of ``part_size`` (default 8 MiB) run ``concurrency`` at
        a time; memory stays at about ``(concurrency + 1) x part_size``.

        ``async with s3.download(b, k) as dl:`` sends the first GET and sets ``dl.info``
        (the whole object), ``dl.offset`` and ``dl.length`` (the bytes served; a range
        that ends past the object is cut at its end); ``async for chunk in dl`` delivers.
        Every range must match the first answer's ETag (or ``if_match``): an object
        replaced mid-download fails with ``ObjectChangedError``. With ``checksum`` (the
        default) a whole-object download of an object with a FULL_OBJECT CRC is checked
        (``IntegrityError`` after the last byte). Arguments are checked here, before any I/O.
        """
        return Download(self._requester, self._download_options(
            bucket, key, offset=offset, length=length, version_id=version_id,
            part_size=part_size, concurrency=concurrency, if_match=if_match,
            checksum=checksum))

    async def download_to(
        self,
        bucket: str,
        key: str,
        path: str | os.PathLike[str],
        *,
        offset: int = 0,
        length: int | None = None,
        version_id: str | None = None,
        part_size: int | None = None,
        concurrency: int = 4,
        if_match: str | None = None,
        checksum: bool = True,
        progress: Callable[[int, int], object] | None = None,
    ) -> ObjectInfo:
        """Download to the file ``path``, through a temporary file in the same directory
        that is renamed over ``path`` once complete (and checked), and removed on any
        failure or cancellation: ``path`` is either the whole download or untouched.
        ``progress(written, total)`` is called after each write to the file (about every
        MiB) and once at the end. The other options mean what they mean for
        ``download()``; returns the object's info."""
        target = check_download_path(path)
        check_callable("progress", progress)
        dl = self.download(bucket, key, offset=offset, length=length, version_id=version_id,
                           part_size=part_size, concurrency=concurrency, if_match=if_match,
                           checksum=checksum)
        return await download_to(dl, target, progress)

    # ------------------------------------------------------------ managing uploads

    async def list_multipart_uploads(
        self, bucket: str, *, prefix: str = ""
    ) -> AsyncIterator[MultipartUploadInfo]:
        """Every in-progress multipart upload in ``bucket`` under ``prefix``, page by page."""
        bucket = proto.validate_bucket(bucket)
        key_marker: str | None = None
        id_marker: str | None = None
        while True:
            page = await self._requester.call(
                proto.list_multipart_uploads(bucket, prefix, key_marker, id_marker),
                proto.read_list_uploads)
            for item in page.uploads:
                yield MultipartUploadInfo(bucket, item.key, item.upload_id,
                                          parse_time(item.initiated))
            if not page.truncated or not page.uploads:
                return
            # Some S3 clones omit the Next*Marker fields: the last entry is the marker.
            key_marker = page.next_key_marker or page.uploads[-1].key
            id_marker = page.next_upload_id_marker or page.uploads[-1].upload_id

    async def list_parts(self, bucket: str, key: str, upload_id: str) -> AsyncIterator[PartInfo]:
        """The parts uploaded so far to an in-progress multipart upload."""
        bucket, key = proto.validate_bucket(bucket), proto.validate_key(key)
        marker: int | None = None
        while True:
            page = await self._requester.call(proto.list_parts(bucket, key, upload_id, marker),
                                    proto.read_list_parts)
            for part in page.parts:
                yield PartInfo(part.number, part.etag, part.size,
                               parse_time(part.last_modified))
            if not page.truncated or not page.parts:
                return
            marker = page.next_part_number_marker or page.parts[-1].number

    async def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> None:
        """Abort one multipart upload (an upload that no longer exists counts as aborted)."""
        await self._requester.call(
            proto.abort_multipart_upload(proto.validate_bucket(bucket), proto.validate_key(key),
                                         upload_id),
            proto.read_abort)

    async def abort_stale(
        self, bucket: str, *, older_than: timedelta | float, prefix: str = ""
    ) -> int:
        """Abort multipart uploads started more than ``older_than`` ago (seconds or a
        timedelta), such as orphans left by crashed processes or other tools.
        Returns how many were aborted."""
        if isinstance(older_than, int | float) and not isinstance(older_than, bool):
            older_than = timedelta(seconds=older_than)
        if not isinstance(older_than, timedelta) or older_than < timedelta(0):
            raise UsageError("older_than must be a non-negative timedelta or number of seconds")
        cutoff = self._requester.now() - older_than
        # Collect first: aborting while paging would shift the listing under the markers.
        stale = [u async for u in self.list_multipart_uploads(bucket, prefix=prefix)
                 if u.initiated is not None and u.initiated <= cutoff]
        for item in stale:
            await self.abort_multipart_upload(bucket, item.key, item.upload_id)
            logger.info("aborted stale upload %s of s3://%s/%s (started %s)",
                        item.upload_id, bucket, item.key, item.initiated)
        return len(stale)

    # ------------------------------------------ multipart across machines, resume
    # create_multipart_upload(), upload_part(), complete_multipart_upload(),
    # resume_upload(): the steps for uploads whose parts come from elsewhere.

    def _part_number(self, part_number: object) -> int:
        top = self.limits.max_parts
        if isinstance(part_number, bool) or not isinstance(part_number, int) or \
                not 1 <= part_number <= top:
            shown = part_number if isinstance(part_number, int) else type_name(part_number)
            raise UsageError(f"part_number must be an int from 1 to {top}, not {shown}")
        return part_number

    async def create_multipart_upload(
        self,
        bucket: str,
        key: str,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        checksum: str | None = None,
    ) -> str:
        """Start a multipart upload whose parts are sent by others; returns its upload id.

        Hand out ``presign_upload_part()`` URLs (or call ``upload_part()`` anywhere with
        credentials), then ``complete_multipart_upload()`` or ``abort_multipart_upload()``.
        ``checksum`` (``"crc32c"``, ``"crc32"``, ``"sha256"``; default None) makes S3 require
        that checksum on every part: use it only when every part is sent by
        ``upload_part(..., checksum=)`` (a presigned URL does not sign that header).
        """
        bucket, key = proto.validate_bucket(bucket), proto.validate_key(key)
        check_optional_str("content_type", content_type)
        check_mapping("metadata", metadata)
        check_mapping("headers", headers)
        algorithm = cks.validate_algorithm(checksum)
        object_headers = proto.build_object_headers(
            content_type=content_type, metadata=metadata, extra_headers=headers)
        return await _multipart.create(self._requester, bucket, key, object_headers, algorithm)

    async def upload_part(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        data: bytes | bytearray | memoryview,
        *,
        checksum: str | None = None,
    ) -> str:
        """Upload one part (1..10000) of an open multipart upload; returns its ETag, for
        ``complete_multipart_upload(parts=[(number, etag), ...])``. Every part but the last
        must be at least 5 MiB (S3 checks that on Complete). ``checksum`` sends that
        checksum of ``data`` (required when the upload was created with one)."""
        bucket, key = proto.validate_bucket(bucket), proto.validate_key(key)
        upload_id = check_upload_id(upload_id)
        number = self._part_number(part_number)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise UsageError(f"data must be bytes, bytearray or memoryview, not {type_name(data)}")
        body = as_buffer(data)  # a mutable buffer is copied: the caller may reuse it
        if len(body) > self.limits.max_part_size:
            raise UsageError(f"a part holds at most {self.limits.max_part_size} bytes, not "
                             f"{len(body)}")
        algorithm = cks.validate_algorithm(checksum)
        return await _multipart.upload_part(self._requester, bucket, key, upload_id, number,
                                            body, algorithm)

    async def complete_multipart_upload(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        parts: Sequence[tuple[int, str]] | None = None,
    ) -> UploadResult:
        """Complete a multipart upload from ``parts`` ((part number, ETag) pairs, in any
        order; gaps in the numbering are allowed) or, with None, from every part ListParts
        reports (all pages; at least one part, else UsageError).

        The outcome is never guessed: a Complete whose answer is lost is confirmed with
        HeadObject. A Complete S3 refuses leaves the upload open: retry it, or abort it.
        """
        bucket, key = proto.validate_bucket(bucket), proto.validate_key(key)
        upload_id = check_upload_id(upload_id)
        checked = None if parts is None else self._check_parts(parts)
        return await _multipart.complete(self._requester, bucket, key, upload_id, checked)

    def _check_parts(self, parts: object) -> list[tuple[int, str]]:
        if isinstance(parts, str | bytes) or not isinstance(parts, Sequence):
            raise UsageError("parts must be a sequence of (part number, ETag) pairs or None, "
                             f"not {type_name(parts)}")
        checked: dict[int, str] = {}
        for item in parts:
            if not isinstance(item, tuple | list) or len(item) != 2:
                raise UsageError("each of parts must be a (part number, ETag) pair, not "
                                 f"{type_name(item)}")
            number, etag = item
            number = self._part_number(number)
            if not isinstance(etag, str) or not etag.strip('"') or \
                    any(c in etag for c in "\r\n<>&"):
                raise UsageError(f"part {number}'s ETag must be the non-empty string "
                                 "UploadPart returned")
            if number in checked:
                raise UsageError(f"part {number} is given twice")
            checked[number] = etag
        if not checked:
            raise UsageError("parts is empty: a multipart upload completes with at least "
                             "one part")
        # S3 wants them in ascending order; callers collect them as workers finish.
        return sorted(checked.items())

    async def resume_upload(
        self,
        bucket: str,
        key: str,
        path: str | os.PathLike[str],
        *,
        upload_id: str | None = None,
        part_size: int | None = None,
        concurrency: int = 4,
        checksum: str | None = DEFAULT,
    ) -> UploadResult:
        """Finish an interrupted multipart upload of the file at ``path``.

        ``upload_id=None`` picks the newest in-progress upload of exactly ``key``
        (UsageError when there is none, or when several cannot be told apart). Each part
        ListParts reports is kept only if its size is the one planned for its number and
        its checksum (the stored one, else the ETag as an MD5) matches the file's bytes;
        every other part is sent, then the upload completed. ``part_size=None`` infers
        the interrupted upload's part size from the listing (``upload(path)`` plans the
        same parts for the same file). ``checksum`` is used only when the store does not
        say which one the upload was created with (default: the client's, as ``upload()``).
        ``result.stats`` is a ``ResumeStats``: which parts were kept, sent, replaced.
        An upload id that does not exist raises ``NotFoundError``. A failed resume never
        aborts: ``UploadError`` names the upload, still open, to resume again or abort.
        """
        bucket, key = proto.validate_bucket(bucket), proto.validate_key(key)
        if not isinstance(path, str | os.PathLike):
            raise UsageError(f"path must be a str or os.PathLike, not {type_name(path)}")
        file_path = os.fspath(path)
        if not isinstance(file_path, str):
            raise UsageError("path must be a str or os.PathLike[str]")
        if upload_id is not None:
            upload_id = check_upload_id(upload_id)
        part_size = check_part_size(part_size)
        if part_size is not None:
            validate_part_size(part_size, self.limits)
        concurrency = check_concurrency(concurrency)
        algorithm = self.checksum if checksum is DEFAULT else cks.validate_algorithm(checksum)
        strict = (checksum is not DEFAULT or self._checksum_explicit) and algorithm is not None
        return await _multipart.resume(
            self._requester, bucket, key, file_path, upload_id=upload_id, part_size=part_size,
            concurrency=concurrency, algorithm=algorithm, strict=strict, limits=self.limits)

    # ---------------------------------------------------------- object operations
    # head_object(), head_bucket(), delete_object(), delete_objects(), list_objects().

    async def head_object(self, bucket: str, key: str, *,
                          version_id: str | None = None) -> ObjectInfo:
        """What S3 holds at ``s3://bucket/key``: size, ETag, content type, metadata,
        stored checksums (asked for with ``x-amz-checksum-mode``), version, dates.

        A missing key *or* bucket raises ``NotFoundError`` with code ``NotFound``: a HEAD
        answer has no body to say which (``head_bucket()`` tells them apart)."""
        request = _objects.head_object(
            proto.validate_bucket(bucket), proto.validate_key(key),
            version_id=check_optional_str("version_id", version_id))
        return await self._requester.call(request, _objects.read_object_info)

    async def head_bucket(self, bucket: str) -> BucketInfo:
        """Check that ``bucket`` exists and these credentials reach it; where it lives.

        A missing bucket raises ``NotFoundError`` (code ``NoSuchBucket``); one that
        exists but is not yours, ``S3ResponseError`` with status 403."""
        bucket = proto.validate_bucket(bucket)
        _, region = self._requester._where(bucket)
        info = await self._requester.call(_objects.head_bucket(bucket),
                                          _objects.bucket_reader(region))
        if info.region and info.region != self._requester.region:
            # Presigned URLs for this bucket are then signed for its own region.
            self._requester.bucket_regions.setdefault(bucket, info.region)
        return info

    async def delete_object(self, bucket: str, key: str, *,
                            version_id: str | None = None) -> None:
        """Delete one object (or one version of it). Deleting a key that does not exist
        succeeds, as S3 does it; a missing bucket raises ``NotFoundError``."""
        request = _objects.delete_object(
            proto.validate_bucket(bucket), proto.validate_key(key),
            version_id=check_optional_str("version_id", version_id))
        await self._requester.call(request, _objects.read_delete)

    async def delete_objects(self, bucket: str, keys: Iterable[str]) -> DeleteResult:
        """Delete many objects, 1,000 per DeleteObjects request, one request at a time.

        Every key is checked before the first request. Keys S3 could not delete are in
        ``result.errors`` with S3's code and message (``result.ok`` is False); a request
        that fails as a whole raises, and the keys of earlier batches stay deleted."""
        bucket = proto.validate_bucket(bucket)
        checked = _objects.check_delete_keys(keys)
        deleted: list[str] = []
        errors: list[_objects.DeleteError] = []
        for start in range(0, len(checked), _objects.MAX_DELETE_KEYS):
            batch = checked[start:start + _objects.MAX_DELETE_KEYS]
            result = await self._requester.call(_objects.delete_objects(bucket, batch),
                                                _objects.read_delete_objects)
            deleted.extend(result.deleted)
            errors.extend(result.errors)
        return DeleteResult(deleted, errors)

    def list_objects(
        self, bucket: str, *, prefix: str = "", delimiter: str | None = None,
        start_after: str | None = None, _max_keys: int | None = None,
    ) -> AsyncIterator[ObjectSummary | CommonPrefix]:
        """The objects in ``bucket`` whose keys start with ``prefix``, in key order
        (ListObjectsV2, page by page as the iteration goes).

        With a ``delimiter`` (usually ``"/"``), keys that hold it after the prefix are
        rolled up into one ``CommonPrefix`` per "directory". ``start_after`` starts the
        listing after that key. Arguments are checked here, before any request."""
        bucket = proto.validate_bucket(bucket)
        if not isinstance(prefix, str):
            raise UsageError(f"prefix must be a str, not {type_name(prefix)}")
        delimiter = check_optional_str("delimiter", delimiter)
        start_after = check_optional_str("start_after", start_after)
        if _max_keys is not None:
            check_count("_max_keys", _max_keys)
        return self._list_objects(bucket, prefix, delimiter, start_after, _max_keys)

    async def _list_objects(
        self, bucket: str, prefix: str, delimiter: str | None, start_after: str | None,
        max_keys: int | None,
    ) -> AsyncIterator[ObjectSummary | CommonPrefix]:
        token: str | None = None
        while True:
            page = await self._requester.call(
                _objects.list_objects(bucket, prefix=prefix, delimiter=delimiter,
                                      start_after=start_after, token=token,
                                      max_keys=max_keys),
                _objects.read_list_objects)
            for item in page.items:
                yield item
            if not page.truncated:
                return
            if page.next_token and page.next_token != token:
                # S3 may send a truncated page with nothing on it: the token still moves on.
                token = page.next_token
            elif page.items and not page.next_token:
                # A store that truncates without a token: go on after the last name seen.
                token, start_after = None, _objects.item_name(page.items[-1])
            else:
                # The same token again, or nothing to go on from: never loop forever.
                raise S3ResponseError(
                    status=200, code="MalformedResponse", operation="ListObjectsV2",
                    message="a truncated listing page gave no way to the next page",
                    bucket=bucket, key=None)

    # -------------------------------------------------------------- presigned URLs
    # presign_get(), presign_put(), presign_upload_part(), object_url().

    async def _presign(self, method: str, bucket: str, key: str, expires: int,
                       query: list[tuple[str, str]],
                       headers: Sequence[tuple[str, str]] = ()) -> str:
        # The credentials current now (refreshed if they are about to expire), the clock
        # as corrected for the server's, and the region the bucket is known to live in.
        if self._requester.closed:
            raise UsageError("this S3Client is closed")
        credentials = await self._requester.credentials.get()
        endpoint, region = self._requester._where(bucket)
        now = self._requester.now()
        if credentials.expiry is not None and now + timedelta(seconds=expires) > \
                credentials.expiry:
            logger.info("presigned %s of s3://%s/%s stops working at %s, when the temporary "
                        "credentials that sign it expire (before its %d s)", method, bucket,
                        key, credentials.expiry.isoformat(), expires)
        return _presign.presign(
            endpoint=endpoint, region=region, credentials=credentials, now=now,
            expires=expires, method=method, bucket=bucket, key=key, query=query,
            headers=headers)

    async def presign_get(
        self, bucket: str, key: str, *, expires: int | timedelta = 3600,
        version_id: str | None = None, response_headers: Mapping[str, str] | None = None,
    ) -> str:
        """A URL that GETs ``s3://bucket/key`` without credentials for ``expires`` seconds
        (an int or a timedelta, 1 s to 7 days). ``response_headers`` asks S3 to answer with
        these headers (``{"Content-Disposition": "attachment; filename=a.txt"}``); only
        the six S3 allows (content type, disposition, encoding, language, cache control,
        expires) can be given."""
        bucket, key = proto.validate_bucket(bucket), proto.validate_key(key)
        seconds = _presign.check_expires(expires)
        query = _presign.response_query(response_headers)
        version_id = check_optional_str("version_id", version_id)
        if version_id is not None:
            query.append(("versionId", version_id))
        return await self._presign("GET", bucket, key, seconds, query)

    async def presign_put(
        self, bucket: str, key: str, *, expires: int | timedelta = 3600,
        content_type: str | None = None, metadata: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> PresignedRequest:
        """A PUT that stores one object (up to 5 GiB) at ``s3://bucket/key`` without
        credentials. The content type, metadata and headers given are signed: whoever
        uses the URL must send ``result.headers`` exactly, or S3 refuses it (403)."""
        bucket, key = proto.validate_bucket(bucket), proto.validate_key(key)
        seconds = _presign.check_expires(expires)
        check_optional_str("content_type", content_type)
        check_mapping("metadata", metadata)
        check_mapping("headers", headers)
        signed = proto.build_object_headers(content_type=content_type, metadata=metadata,
                                            extra_headers=headers)
        url = await self._presign("PUT", bucket, key, seconds, [], signed)
        return PresignedRequest("PUT", url, dict(signed))

    async def presign_upload_part(
        self, bucket: str, key: str, upload_id: str, part_number: int, *,
        expires: int | timedelta = 3600,
    ) -> str:
        """A URL that PUTs part ``part_number`` (1..10,000) of multipart upload
        ``upload_id`` with no credentials and no signed headers: for a browser or a worker
        on another machine. The body is the part's bytes; the answer's ETag is the part's
        (``complete_multipart_upload()`` can also find it by ListParts)."""
        bucket, key = proto.validate_bucket(bucket), proto.validate_key(key)
        upload_id = check_upload_id(upload_id)
        part_number = self._part_number(part_number)
        seconds = _presign.check_expires(expires)
        query = [("partNumber", str(part_number)), ("uploadId", upload_id)]
        return await self._presign("PUT", bucket, key, seconds, query)

    def object_url(self, bucket: str, key: str) -> str:
        """The plain, unsigned URL of ``s3://bucket/key``: for public objects, or a CDN
        in front of the bucket. Nothing is sent."""
        bucket, key = proto.validate_bucket(bucket), proto.validate_key(key)
        endpoint, _ = self._requester._where(bucket)
        return _presign.object_url(endpoint, bucket, key)
