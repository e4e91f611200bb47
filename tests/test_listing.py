"""Listing pages: markers are followed, including from servers that omit Next*Marker."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qsl, urlsplit

from s3stream import Credentials, S3Client
from s3stream._protocol import Response

NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


def uploads_page(items: list[tuple[str, str]], truncated: bool, markers: bool) -> bytes:
    body = "".join(f"<Upload><Key>{k}</Key><UploadId>{u}</UploadId>"
                   "<Initiated>2026-01-01T00:00:00.000Z</Initiated></Upload>" for k, u in items)
    extra = ""
    if truncated and markers:
        extra = (f"<NextKeyMarker>{items[-1][0]}</NextKeyMarker>"
                 f"<NextUploadIdMarker>{items[-1][1]}</NextUploadIdMarker>")
    return (f"<ListMultipartUploadsResult {NS}><IsTruncated>{str(truncated).lower()}"
            f"</IsTruncated>{extra}{body}</ListMultipartUploadsResult>").encode()


class PagingTransport:
    """Answers ListMultipartUploads two uploads per page, recording the queries."""

    def __init__(self, markers: bool) -> None:
        self.items = [(f"k{i}", f"u{i}") for i in range(5)]
        self.markers = markers
        self.queries: list[dict[str, str]] = []

    async def send(self, method: str, url: str, headers: Sequence[tuple[str, str]],
                   body: object, size: int, *, operation: str) -> Response:
        query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
        self.queries.append(query)
        start = 0
        if "key-marker" in query:
            start = [k for k, _ in self.items].index(query["key-marker"]) + 1
        page = self.items[start : start + 2]
        truncated = start + 2 < len(self.items)
        return Response(200, {}, uploads_page(page, truncated, self.markers))

    async def aclose(self) -> None:
        return None


async def collect(markers: bool) -> tuple[list[str], PagingTransport]:
    client = S3Client(endpoint="http://127.0.0.1:9", credentials=Credentials("AK", "SK"))
    transport = PagingTransport(markers)
    client._requester.transport = transport  # type: ignore[assignment]
    keys = [u.key async for u in client.list_multipart_uploads("bucket")]
    await client.aclose()
    return keys, transport


async def test_follows_next_markers() -> None:
    keys, transport = await collect(markers=True)
    assert keys == ["k0", "k1", "k2", "k3", "k4"]
    assert [q.get("key-marker") for q in transport.queries] == [None, "k1", "k3"]
    assert transport.queries[1]["upload-id-marker"] == "u1"


async def test_without_next_markers_uses_the_last_entry() -> None:
    keys, transport = await collect(markers=False)
    assert keys == ["k0", "k1", "k2", "k3", "k4"]
    assert len(transport.queries) == 3
