"""Round trips against real S3 servers (SeaweedFS, moto, rclone; all enforcing SigV4).

Every test runs once per server (``every_server``) and reads back with boto3. Where a server
does not do what S3 does, the test says so and asserts what that server does instead.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import pytest
from support import UnevenStream, read_back, sha256

from s3stream import Credentials, S3Client, S3ResponseError, UsageError
from s3stream.testing import LocalS3

MiB = 1 << 20
pytestmark = [pytest.mark.real_s3, pytest.mark.every_server]


@pytest.mark.parametrize(
    "size", [0, 1, 5 * MiB - 1, 5 * MiB, 5 * MiB + 1, 16 * MiB + 7], ids=lambda s: f"{s}B"
)
async def test_round_trip_sizes(
    server: LocalS3, s3: S3Client, bucket: str, boto: Any, size: int
) -> None:
    data = os.urandom(size)

    async def source() -> Any:
        # Uneven chunking that is not aligned to the part size.
        for start in range(0, size, 777_777):
            yield data[start : start + 777_777]

    result = await s3.upload(bucket, f"obj/{size}", source(), part_size=5 * MiB)
    assert read_back(boto, bucket, f"obj/{size}") == data
    assert result.size == size
    head = boto.head_object(Bucket=bucket, Key=f"obj/{size}")
    assert head["ContentLength"] == size
    if size <= 5 * MiB:
        assert result.upload_id is None  # one PutObject, no multipart
        assert head["ETag"] == result.etag == f'"{hashlib.md5(data).hexdigest()}"'
    else:
        assert result.part_count == -(-size // (5 * MiB))
        assert result.etag.endswith(f'-{result.part_count}"')
        if server.name == "rclone":
            # rclone answers CompleteMultipartUpload with an S3-style "<md5 of the part
            # MD5s>-N" ETag but stores the object as a file, whose ETag is its whole MD5.
            assert head["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
        else:
            assert head["ETag"] == result.etag


async def test_100_mib_uneven_chunks(s3: S3Client, bucket: str, boto: Any) -> None:
    stream = UnevenStream(100 * MiB + 12345, seed=7)
    result = await s3.upload(bucket, "big/uneven.bin", stream, part_size=8 * MiB, concurrency=4)
    assert result.size == stream.total
    assert result.part_count == 13
    body = read_back(boto, bucket, "big/uneven.bin")
    assert len(body) == stream.total
    assert sha256(body) == stream.digest.hexdigest()


def metadata_of(server: LocalS3, head: Any) -> dict[str, str]:
    """The user metadata HeadObject returned, with rclone's renaming undone."""
    metadata: dict[str, str] = head["Metadata"]
    if server.name == "rclone":
        # rclone (Go's net/http) sends header names in canonical form, so x-amz-meta-origin
        # comes back as X-Amz-Meta-Origin and boto3 reports the name as "Origin". Header
        # names are case-insensitive; the value is compared exactly either way.
        assert all(name[:1].isupper() for name in metadata), metadata
        return {name.lower(): value for name, value in metadata.items()}
    return metadata


async def test_default_part_size_and_metadata(
    server: LocalS3, s3: S3Client, bucket: str, boto: Any
) -> None:
    stream = UnevenStream(20 * MiB, seed=3)
    result = await s3.upload(
        bucket, "meta.bin", stream, content_type="video/mp4",
        metadata={"origin": "camera-7"}, headers={"Cache-Control": "no-store"},
    )
    assert result.part_count == 3  # 8 MiB default parts
    head = boto.head_object(Bucket=bucket, Key="meta.bin")
    assert head["ContentType"] == "video/mp4"
    assert metadata_of(server, head) == {"origin": "camera-7"}
    assert head["CacheControl"] == "no-store"
    assert sha256(read_back(boto, bucket, "meta.bin")) == stream.digest.hexdigest()


async def test_single_put_keeps_metadata(
    server: LocalS3, s3: S3Client, bucket: str, boto: Any
) -> None:
    await s3.upload(bucket, "small.txt", b"hello", content_type="text/plain",
                    metadata={"k": "v"})
    head = boto.head_object(Bucket=bucket, Key="small.txt")
    assert head["ContentType"] == "text/plain"
    assert metadata_of(server, head) == {"k": "v"}


KEYS = [
    "with space.txt",
    "plus+sign",
    "percent%20literal",
    "tilde~and=equals&amp",
    "parens(1):at@dollar$",
    "ключ/файл ☃.bin",
    "deep/nested/path/to/obj",
    "quote'and*star!",
    "/".join(["s" * 200] * 5)[:1024],
]


@pytest.mark.parametrize("key", KEYS, ids=range(len(KEYS)))
async def test_special_keys_round_trip(s3: S3Client, bucket: str, boto: Any, key: str) -> None:
    data = os.urandom(1000)
    await s3.upload(bucket, key, data)
    assert read_back(boto, bucket, key) == data
    listed = [o["Key"] for o in boto.list_objects_v2(Bucket=bucket)["Contents"]]
    assert listed == [key]


async def test_special_key_multipart(s3: S3Client, bucket: str, boto: Any) -> None:
    key = "multi part/ключ+(x)=@$.bin"
    stream = UnevenStream(11 * MiB, seed=11)
    await s3.upload(bucket, key, stream, part_size=5 * MiB)
    assert sha256(read_back(boto, bucket, key)) == stream.digest.hexdigest()


# What the servers do with keys that a filesystem path would normalise: S3 (and moto) keep
# them as they are; SeaweedFS refuses "." and ".." segments and merges "//"; rclone, which
# stores objects as files, refuses all of them. s3stream sends them exactly as given either way.
DOT_KEYS = ["a/./b", "a/../b", "./x", ".."]


@pytest.mark.parametrize("key", DOT_KEYS, ids=range(len(DOT_KEYS)))
async def test_dot_segment_keys_are_sent_exactly(
    server: LocalS3, s3: S3Client, bucket: str, boto: Any, key: str
) -> None:
    data = b"data of " + key.encode()
    if server.name == "moto":
        # Stored under exactly this key: a request normalised on the way (to a/b, b, x or
        # the bucket itself) would have read back nothing or failed its signature check.
        await s3.upload(bucket, key, data)
        assert read_back(boto, bucket, key) == data
        assert [o["Key"] for o in boto.list_objects_v2(Bucket=bucket)["Contents"]] == [key]
        return
    with pytest.raises(S3ResponseError) as info:
        await s3.upload(bucket, key, data)
    # Refused by name, so the server saw the segments; a client that normalised them away
    # would have stored an object under another key instead.
    if server.name == "rclone":
        assert (info.value.status, info.value.code) == (400, "InvalidArgument")
        assert key in info.value.message
    else:
        assert (info.value.status, info.value.code) == (400, "InvalidRequest")
    assert info.value.key == key
    assert "Contents" not in boto.list_objects_v2(Bucket=bucket)


async def test_double_slash_key_is_sent_exactly(
    server: LocalS3, s3: S3Client, bucket: str, boto: Any
) -> None:
    key = "a//b"
    if server.name == "rclone":
        with pytest.raises(S3ResponseError) as info:
            await s3.upload(bucket, key, b"x")
        assert (info.value.status, info.value.code) == (400, "InvalidArgument")
        assert "Contents" not in boto.list_objects_v2(Bucket=bucket)
        return
    await s3.upload(bucket, key, b"x")
    assert read_back(boto, bucket, key) == b"x"
    listed = [o["Key"] for o in boto.list_objects_v2(Bucket=bucket)["Contents"]]
    # SeaweedFS keeps objects in a directory tree: "a//b" is found again by its key, but the
    # listing shows the merged path. moto keeps the key as sent.
    assert listed == (["a/b"] if server.name == "seaweedfs" else [key])


async def test_1024_byte_key(s3: S3Client, bucket: str, boto: Any) -> None:
    # Two-byte UTF-8 characters in 250-byte segments (SeaweedFS caps a segment at 255 bytes).
    key = "/".join(["ж" * 125] * 4) + "/" + "x" * 20
    assert len(key.encode()) == 1024
    await s3.upload(bucket, key, b"data")
    assert read_back(boto, bucket, key) == b"data"


async def test_file_path_and_file_object(
    s3: S3Client, bucket: str, boto: Any, tmp_path: Path
) -> None:
    data = os.urandom(13 * MiB + 5)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    r1 = await s3.upload(bucket, "from-path", str(path), part_size=5 * MiB)
    r2 = await s3.upload(bucket, "from-pathlike", path, part_size=5 * MiB)
    with path.open("rb") as f:
        r3 = await s3.upload(bucket, "from-file", f, part_size=5 * MiB)
    r4 = await s3.upload(bucket, "from-bytesio", io.BytesIO(data), part_size=5 * MiB)
    r5 = await s3.upload(bucket, "from-bytearray", bytearray(data), part_size=5 * MiB)
    for result in (r1, r2, r3, r4, r5):
        assert result.size == len(data)
        assert result.part_count == 3
        assert read_back(boto, bucket, result.key) == data


async def test_push_style_open_upload(s3: S3Client, bucket: str, boto: Any) -> None:
    sent = bytearray()
    async with s3.open_upload(bucket, "pushed.ndjson", part_size=5 * MiB) as up:
        for i in range(120_000):
            line = f'{{"n": {i}, "pad": "{"x" * (i % 97)}"}}\n'.encode()
            sent += line
            await up.write(line)
    assert up.result is not None
    assert up.result.size == len(sent)
    assert up.result.part_count >= 2
    assert read_back(boto, bucket, "pushed.ndjson") == bytes(sent)


async def test_open_upload_exception_aborts(s3: S3Client, bucket: str, boto: Any) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with s3.open_upload(bucket, "never.bin", part_size=5 * MiB) as up:
            await up.write(os.urandom(12 * MiB))
            assert up.upload_id is not None  # multipart is open on the server now
            raise Boom
    # The ``bucket`` fixture asserts no upload is open; the object must not exist either.
    assert "Contents" not in boto.list_objects_v2(Bucket=bucket)


async def test_wrong_secret_is_signature_error(
    server: LocalS3, bucket: str, boto: Any
) -> None:
    bad = Credentials(server.credentials.access_key_id, "not-the-secret")
    async with S3Client(endpoint=server.endpoint, region=server.region,
                        credentials=bad) as s3:
        with pytest.raises(S3ResponseError) as info:
            await s3.upload(bucket, "denied.bin", b"x")
    assert info.value.code == "SignatureDoesNotMatch"
    assert info.value.status == 403
    assert info.value.bucket == bucket
    assert "not-the-secret" not in str(info.value)
    assert "Contents" not in boto.list_objects_v2(Bucket=bucket)


async def test_wrong_secret_multipart(server: LocalS3, bucket: str) -> None:
    bad = Credentials(server.credentials.access_key_id, "not-the-secret")
    async with S3Client(endpoint=server.endpoint, region=server.region,
                        credentials=bad) as s3:
        with pytest.raises(S3ResponseError) as info:
            await s3.upload(bucket, "denied.bin", UnevenStream(12 * MiB), part_size=5 * MiB)
    assert info.value.code == "SignatureDoesNotMatch"
    assert info.value.operation == "CreateMultipartUpload"


@pytest.mark.parametrize("sign_payload", [True, False])
async def test_payload_signing_modes(
    server: LocalS3, bucket: str, boto: Any, sign_payload: bool
) -> None:
    async with S3Client(endpoint=server.endpoint, region=server.region,
                        credentials=server.credentials,
                        sign_payload=sign_payload) as s3:
        stream = UnevenStream(6 * MiB, seed=5)
        await s3.upload(bucket, "signed.bin", stream, part_size=5 * MiB)
    assert sha256(read_back(boto, bucket, "signed.bin")) == stream.digest.hexdigest()


async def test_session_token_is_sent(server: LocalS3, bucket: str, boto: Any) -> None:
    creds = server.credentials
    with_token = Credentials(creds.access_key_id, creds.secret_access_key, "bogus-token")
    async with S3Client(endpoint=server.endpoint, region=server.region,
                        credentials=with_token) as s3:
        if server.name == "rclone":
            # rclone has no session tokens and ignores x-amz-security-token. It does refuse
            # any x-amz-* header left out of the signature, so this shows the token header,
            # when sent, is signed; the servers below show that it is sent.
            await s3.upload(bucket, "token.bin", b"x")
            assert read_back(boto, bucket, "token.bin") == b"x"
            return
        with pytest.raises(S3ResponseError) as info:
            await s3.upload(bucket, "token.bin", b"x")
    # Both check a session token against the ones they issued, so a bogus one is refused,
    # which shows it travelled with the request (the same keys alone are accepted).
    if server.name == "moto":
        # moto answers as AWS does for a token it cannot read: 400 InvalidToken.
        assert (info.value.status, info.value.code) == (400, "InvalidToken")
    else:
        assert info.value.status == 403
    assert "bogus-token" not in str(info.value)
    assert "Contents" not in boto.list_objects_v2(Bucket=bucket)


async def test_bad_input_sends_nothing(s3: S3Client, bucket: str, boto: Any) -> None:
    with pytest.raises(UsageError):
        await s3.upload(bucket, "x", b"data", part_size=1 * MiB)
    with pytest.raises(UsageError):
        await s3.upload(bucket, "", b"data")
    with pytest.raises(UsageError):
        await s3.upload(bucket, "k" * 1025, b"data")
    with pytest.raises(UsageError):
        await s3.upload(bucket, "x", b"data", metadata={"a": "b\r\nX-Evil: 1"})
    with pytest.raises(UsageError, match="no such file"):
        await s3.upload(bucket, "x", "/no/such/file.bin", part_size=5 * MiB)
    with pytest.raises(TypeError):
        await s3.upload(bucket, "x", 12345, part_size=5 * MiB)  # type: ignore[arg-type]
    assert "Contents" not in boto.list_objects_v2(Bucket=bucket)


async def test_borrowed_session_is_not_closed(
    server: LocalS3, bucket: str, boto: Any
) -> None:
    import aiohttp

    # raise_for_status=True on the caller's session must not hide S3's XML error from us.
    async with aiohttp.ClientSession(raise_for_status=True) as session:
        async with S3Client(endpoint=server.endpoint, region=server.region,
                            credentials=server.credentials, session=session) as s3:
            await s3.upload(bucket, "borrowed.bin", b"via a borrowed session")
        assert not session.closed
        bad = Credentials(server.credentials.access_key_id, "wrong")
        async with S3Client(endpoint=server.endpoint, region=server.region,
                            credentials=bad, session=session) as s3:
            with pytest.raises(S3ResponseError) as info:
                await s3.upload(bucket, "denied.bin", b"x")
        assert info.value.code == "SignatureDoesNotMatch"
        assert not session.closed
    assert read_back(boto, bucket, "borrowed.bin") == b"via a borrowed session"


async def test_owned_session_is_closed(server: LocalS3, bucket: str) -> None:
    s3 = S3Client(endpoint=server.endpoint, credentials=server.credentials)
    await s3.upload(bucket, "owned.bin", b"x")
    session = s3._requester.transport._session
    assert session is not None and not session.closed
    await s3.aclose()
    assert session.closed
    with pytest.raises(UsageError, match="closed"):
        await s3.upload(bucket, "after.bin", b"x")
