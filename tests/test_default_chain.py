"""``S3Client()`` with no credentials argument, in each environment a service runs in:
the default chain finds the credentials (a container endpoint, EC2 instance metadata,
a profile's credential_process), in the AWS SDKs' order, and uploads to a real server."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from aws_metadata import ContainerCredentialsServer, InstanceMetadataServer
from support import read_back

from s3stream import Credentials, NoCredentialsError, S3Client
from s3stream.credentials._chain import ChainProvider
from s3stream.testing import LocalS3

pytestmark = pytest.mark.real_s3


def _served(server: LocalS3) -> Credentials:
    keys = server.credentials  # long-term keys: SeaweedFS refuses tokens it did not issue
    return Credentials(keys.access_key_id, keys.secret_access_key)


def _base_env(tmp_path: Path) -> dict[str, str]:
    # A HOME without ~/.aws, and nothing else: what a fresh container or instance has.
    return {"HOME": str(tmp_path)}


async def test_instance_metadata_is_found_last(
    s3stream_local_s3: LocalS3, bucket: str, boto: Any, tmp_path: Path
) -> None:
    async with InstanceMetadataServer(_served(s3stream_local_s3), expires_in=3600) as imds:
        env = {**_base_env(tmp_path), "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url}
        async with S3Client(endpoint=s3stream_local_s3.endpoint,
                            region=s3stream_local_s3.region, environ=env) as client:
            assert isinstance(client.credentials, ChainProvider)
            await client.upload(bucket, "chain/imds.txt", b"from the chain")
    assert read_back(boto, bucket, "chain/imds.txt") == b"from the chain"


async def test_container_credentials_come_before_instance_metadata(
    s3stream_local_s3: LocalS3, bucket: str, boto: Any, tmp_path: Path
) -> None:
    wrong = Credentials("AKIDWRONGWRONGWRONG0", "not-the-secret")
    async with ContainerCredentialsServer(_served(s3stream_local_s3), path="/creds",
                                          expected_token="tok") as ecs, \
            InstanceMetadataServer(wrong, expires_in=3600) as imds:
        env = {**_base_env(tmp_path), "AWS_CONTAINER_CREDENTIALS_FULL_URI": ecs.url + "/creds",
               "AWS_CONTAINER_AUTHORIZATION_TOKEN": "tok",
               "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url}
        async with S3Client(endpoint=s3stream_local_s3.endpoint,
                            region=s3stream_local_s3.region, environ=env) as client:
            await client.upload(bucket, "chain/ecs.txt", b"from ECS")
        assert imds.total == 0  # never asked: the container endpoint answered first
    assert read_back(boto, bucket, "chain/ecs.txt") == b"from ECS"


async def test_profile_credential_process(
    s3stream_local_s3: LocalS3, bucket: str, boto: Any, tmp_path: Path
) -> None:
    keys = _served(s3stream_local_s3)
    script = tmp_path / "creds.py"
    script.write_text(
        "import json\n"
        f"print(json.dumps({{'Version': 1, 'AccessKeyId': {keys.access_key_id!r}, "
        f"'SecretAccessKey': {keys.secret_access_key!r}}}))\n")
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "config").write_text(
        f"[profile svc]\ncredential_process = {sys.executable} {script}\n")
    env = {**_base_env(tmp_path), "AWS_PROFILE": "svc", "AWS_EC2_METADATA_DISABLED": "true"}
    async with S3Client(endpoint=s3stream_local_s3.endpoint, region=s3stream_local_s3.region,
                        environ=env) as client:
        await client.upload(bucket, "chain/process.txt", b"from a process")
    assert read_back(boto, bucket, "chain/process.txt") == b"from a process"


async def test_nothing_anywhere_lists_every_source(tmp_path: Path) -> None:
    env = {**_base_env(tmp_path), "AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:9"}
    async with S3Client(endpoint="http://127.0.0.1:9", region="us-east-1",
                        environ=env) as client:
        with pytest.raises(NoCredentialsError) as info:
            await client.upload("bucket", "k", b"x")
    text = str(info.value)
    for source in ("AWS_ACCESS_KEY_ID", "web identity", "profile", "container",
                   "instance metadata"):
        assert source.lower() in text.lower(), (source, text)
