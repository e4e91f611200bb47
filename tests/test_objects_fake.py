"""Object operations against a small aiohttp S3 peer that answers as scripted: per-key
DeleteObjects errors, exact request shapes, and listing dialects the real servers here
do not speak (no continuation token, lone elements, no namespace)."""

from __future__ import annotations

import base64
import hashlib
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from s3stream import (
    CommonPrefix,
    Credentials,
    DeleteError,
    ObjectSummary,
    Retry,
    S3Client,
    S3ResponseError,
)

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


@dataclass
class Peer:
    """Records each request; ``answer`` makes the reply."""

    answer: Callable[[web.Request, bytes], web.Response]
    seen: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    endpoint: str = ""


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    state = Peer(answer=lambda r, b: web.Response(status=500))

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        state.seen.append((request.method, request.path_qs, dict(request.headers), body))
        return state.answer(request, body)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.endpoint = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        await runner.cleanup()


def _client(peer: Peer) -> S3Client:
    async def no_sleep(_: float) -> None:
        return None

    return S3Client(endpoint=peer.endpoint, region="us-east-1",
                    credentials=Credentials("AK", "SK"), retry=Retry(attempts=2),
                    sleep=no_sleep)


def _keys_in(body: bytes) -> list[str]:
    return [o.findtext(f"{NS}Key") or "" for o in ET.fromstring(body).iter(f"{NS}Object")]


def _xml(text: str, status: int = 200) -> web.Response:
    return web.Response(status=status, body=text.encode(), content_type="application/xml")


async def test_delete_objects_reports_per_key_errors(peer: Peer) -> None:
    def answer(request: web.Request, body: bytes) -> web.Response:
        entries = []
        for key in _keys_in(body):
            if key.endswith("7"):
                entries.append(f"<Error><Key>{key}</Key><Code>AccessDenied</Code>"
                               "<Message>Access Denied</Message></Error>")
            else:
                entries.append(f"<Deleted><Key>{key}</Key></Deleted>")
        return _xml(f'<DeleteResult xmlns="{NS[1:-1]}">{"".join(entries)}</DeleteResult>')

    peer.answer = answer
    keys = [f"k/{i:04d}" for i in range(2500)]
    async with _client(peer) as s3:
        result = await s3.delete_objects("bucket", keys)
    assert not result.ok
    denied = [k for k in keys if k.endswith("7")]
    assert result.errors == [DeleteError(k, "AccessDenied", "Access Denied") for k in denied]
    assert result.deleted == [k for k in keys if not k.endswith("7")]
    # Three requests of 1000, 1000 and 500 keys, in order, each with a correct Content-MD5.
    assert [(m, p) for m, p, _, _ in peer.seen] == [("POST", "/bucket?delete")] * 3
    assert [len(_keys_in(b)) for _, _, _, b in peer.seen] == [1000, 1000, 500]
    assert [k for _, _, _, b in peer.seen for k in _keys_in(b)] == keys
    for _, _, headers, body in peer.seen:
        assert headers["Content-MD5"] == base64.b64encode(hashlib.md5(body).digest()).decode()
        assert "content-md5" in headers["Authorization"]  # signed, like every header sent


async def test_delete_objects_lone_error_and_200_error_document(peer: Peer) -> None:
    peer.answer = lambda r, b: _xml(
        "<DeleteResult><Error><Key>only</Key><Code>InternalError</Code>"
        "<Message>try again</Message></Error></DeleteResult>")
    async with _client(peer) as s3:
        result = await s3.delete_objects("bucket", ["only"])
        assert result.deleted == []
        assert result.errors == [DeleteError("only", "InternalError", "try again")]
        # A whole-request failure sent as 200 + <Error> is an error, retried like any.
        peer.answer = lambda r, b: _xml("<Error><Code>InternalError</Code></Error>")
        peer.seen.clear()
        with pytest.raises(S3ResponseError) as caught:
            await s3.delete_objects("bucket", ["a"])
    assert (caught.value.status, caught.value.code) == (200, "InternalError")
    assert len(peer.seen) == 2


async def test_list_without_continuation_token_goes_on_after_the_last_name(peer: Peer) -> None:
    # A store that truncates but sends no NextContinuationToken, no namespace, and lone
    # elements (a single <Contents>, a single <CommonPrefixes>).
    pages = {
        None: "<ListBucketResult><IsTruncated>true</IsTruncated>"
              "<Contents><Key>a</Key><Size>3</Size><ETag>\"x\"</ETag></Contents>"
              "<CommonPrefixes><Prefix>b/</Prefix></CommonPrefixes></ListBucketResult>",
        "b/": "<ListBucketResult><IsTruncated>false</IsTruncated>"
              "<Contents><Key>c</Key><Size>1</Size></Contents></ListBucketResult>",
    }

    def answer(request: web.Request, body: bytes) -> web.Response:
        return _xml(pages[request.query.get("start-after")])

    peer.answer = answer
    async with _client(peer) as s3:
        items = [i async for i in s3.list_objects("bucket", delimiter="/")]
    assert items == [ObjectSummary("a", 3, '"x"', None), CommonPrefix("b/"),
                     ObjectSummary("c", 1, None, None)]
    queries: list[dict[str, Any]] = [dict(p.split("=", 1) for p in path.split("?")[1].split("&"))
                                     for _, path, _, _ in peer.seen]
    assert queries == [
        {"list-type": "2", "encoding-type": "url", "delimiter": "%2F"},
        {"list-type": "2", "encoding-type": "url", "delimiter": "%2F", "start-after": "b%2F"},
    ]


async def test_list_follows_continuation_tokens(peer: Peer) -> None:
    def answer(request: web.Request, body: bytes) -> web.Response:
        token = request.query.get("continuation-token")
        if token is None:
            return _xml("<R><IsTruncated>true</IsTruncated><NextContinuationToken>t/+=1"
                        "</NextContinuationToken><Contents><Key>1</Key></Contents>"
                        "<Contents><Key>2</Key></Contents></R>")
        assert token == "t/+=1"
        return _xml("<R><IsTruncated>false</IsTruncated><Contents><Key>3</Key></Contents></R>")

    peer.answer = answer
    async with _client(peer) as s3:
        keys = [i.key async for i in s3.list_objects("bucket", start_after="0", _max_keys=2)
                if isinstance(i, ObjectSummary)]
    assert keys == ["1", "2", "3"]
    assert "start-after=0" in peer.seen[0][1] and "max-keys=2" in peer.seen[0][1]
    # The token replaces start-after on the next page.
    assert "start-after" not in peer.seen[1][1]


async def test_list_empty_truncated_page_and_a_token_that_does_not_move(peer: Peer) -> None:
    def answer(request: web.Request, body: bytes) -> web.Response:
        token = request.query.get("continuation-token")
        if token is None:  # truncated, nothing on it, but a token: go on
            return _xml("<R><IsTruncated>true</IsTruncated>"
                        "<NextContinuationToken>t1</NextContinuationToken></R>")
        # A broken store: the same token forever.
        return _xml("<R><IsTruncated>true</IsTruncated><Contents><Key>k</Key></Contents>"
                    "<NextContinuationToken>t1</NextContinuationToken></R>")

    peer.answer = answer
    seen: list[str] = []
    async with _client(peer) as s3:
        with pytest.raises(S3ResponseError, match="no way to the next page"):
            async for item in s3.list_objects("bucket"):
                seen.append(item.key if isinstance(item, ObjectSummary) else item.prefix)
    assert seen == ["k"]
    assert len(peer.seen) == 2
