"""Credentials, region and endpoint resolution, the way AWS's own tools do it.

Order for credentials: explicit argument, then ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, then the profile named by
``AWS_PROFILE`` (default ``default``) in the shared credentials file, then in the
config file. Region: argument, ``AWS_REGION``, ``AWS_DEFAULT_REGION``, the profile's
``region``. Endpoint: argument, ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``, the
profile's ``endpoint_url``, else AWS's regional endpoint.

Everything here takes the environment as a mapping so tests never touch ``os.environ``;
the only I/O is reading the two small INI files.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .exceptions import UsageError


@dataclass(frozen=True, slots=True)
class Credentials:
    """AWS access key, secret and optional session token. The secret never shows in a repr."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.access_key_id or not self.secret_access_key:
            raise UsageError("Credentials need a non-empty access_key_id and secret_access_key")
        for name in ("access_key_id", "secret_access_key", "session_token"):
            value = getattr(self, name)
            if value is not None and any(c in value for c in "\r\n"):
                raise UsageError(f"Credentials.{name} contains a line break")

    def __repr__(self) -> str:
        token = ", session_token='***'" if self.session_token else ""
        return f"Credentials(access_key_id={self.access_key_id!r}, secret_access_key='***'{token})"


def _profile_name(environ: Mapping[str, str]) -> str:
    return environ.get("AWS_PROFILE") or environ.get("AWS_DEFAULT_PROFILE") or "default"


def _read_ini(path: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error as exc:
        raise UsageError(f"cannot parse AWS config file {path}: {exc}") from None
    return parser


def _profile_sections(environ: Mapping[str, str]) -> list[dict[str, str]]:
    """The profile's settings, credentials file first, then the config file."""
    home = environ.get("HOME") or str(Path.home())
    profile = _profile_name(environ)
    creds_path = environ.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.join(
        home, ".aws", "credentials"
    )
    config_path = environ.get("AWS_CONFIG_FILE") or os.path.join(home, ".aws", "config")
    found: list[dict[str, str]] = []
    creds = _read_ini(os.path.expanduser(creds_path))
    if creds.has_section(profile):
        found.append(dict(creds.items(profile)))
    config = _read_ini(os.path.expanduser(config_path))
    # The config file names non-default profiles "profile NAME".
    for section in ((f"profile {profile}", profile) if profile != "default" else ("default",)):
        if config.has_section(section):
            found.append(dict(config.items(section)))
            break
    return found


def _from_profile(environ: Mapping[str, str], option: str) -> str | None:
    for section in _profile_sections(environ):
        value = section.get(option)
        if value:
            return value.strip()
    return None


def resolve_credentials(
    explicit: Credentials | None, environ: Mapping[str, str]
) -> Credentials | None:
    """Explicit, then environment, then shared files. None means "send unsigned requests"."""
    if explicit is not None:
        return explicit
    key, secret = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:
        return Credentials(key, secret, environ.get("AWS_SESSION_TOKEN") or None)
    for section in _profile_sections(environ):
        key, secret = section.get("aws_access_key_id"), section.get("aws_secret_access_key")
        if key and secret:
            token = section.get("aws_session_token") or None
            return Credentials(key.strip(), secret.strip(), token.strip() if token else None)
    return None


def resolve_region(explicit: str | None, environ: Mapping[str, str]) -> str:
    region = (
        explicit
        or environ.get("AWS_REGION")
        or environ.get("AWS_DEFAULT_REGION")
        or _from_profile(environ, "region")
        or "us-east-1"
    )
    if any(c in region for c in "/\r\n "):
        raise UsageError(f"invalid region {region!r}")
    return region


def resolve_endpoint(explicit: str | None, environ: Mapping[str, str]) -> str | None:
    """A custom endpoint URL, or None for AWS's own regional endpoint."""
    return (
        explicit
        or environ.get("AWS_ENDPOINT_URL_S3")
        or environ.get("AWS_ENDPOINT_URL")
        or _from_profile(environ, "endpoint_url")
        or None
    )
