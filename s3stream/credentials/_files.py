"""Credentials, region and endpoint resolution, the way AWS's own tools do it.

Order for credentials: explicit argument, then ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, then the profile named by
``AWS_PROFILE`` (default ``default``) in the shared credentials file, then in the
config file. Region: argument, ``AWS_REGION``, ``AWS_DEFAULT_REGION``, the profile's
``region``. Endpoint: argument, ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``, the
profile's ``endpoint_url``, else AWS's regional endpoint.

Finding no credentials is a result (``CredentialsNotFound``, listing where it looked),
not an anonymous fallback: unsigned requests need ``Credentials.anonymous()``.

Everything here takes the environment as a mapping so tests never touch ``os.environ``;
the only I/O is reading the two small INI files.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..exceptions import UsageError
from ._model import Credentials, CredentialsNotFound


def _profile_name(environ: Mapping[str, str]) -> str:
    return environ.get("AWS_PROFILE") or environ.get("AWS_DEFAULT_PROFILE") or "default"


def _read_ini(path: str) -> tuple[configparser.RawConfigParser, bool]:
    """The parsed file, and whether it could be read at all (missing files are empty)."""
    parser = configparser.RawConfigParser()
    try:
        read = parser.read(path, encoding="utf-8")
    except configparser.Error as exc:
        # configparser's own messages quote the offending line, which may hold a secret:
        # only the line number and the kind of error are shown.
        line = getattr(exc, "lineno", None)
        errors = getattr(exc, "errors", None)
        if line is None and errors:
            line = errors[0][0]
        where = f" (line {line})" if line is not None else ""
        raise UsageError(f"cannot parse AWS config file {path}{where}: "
                         f"{type(exc).__name__}") from None
    except UnicodeDecodeError:
        raise UsageError(f"cannot parse AWS config file {path}: not UTF-8") from None
    return parser, bool(read)


@dataclass(frozen=True, slots=True)
class _ProfileFile:
    """The profile's section in one of the two shared files, as found."""

    path: str
    #: Which variable chose ``path``, or "" when it is the default location.
    path_from: str
    section_name: str
    readable: bool
    #: The settings as found (secrets among them): never in the repr.
    section: dict[str, str] | None = field(repr=False)


#: Profile settings that obtain credentials other than as static keys.
_UNSUPPORTED = ("credential_process", "role_arn", "sso_session", "sso_start_url",
                "web_identity_token_file", "credential_source")


ProfileFiles = tuple[_ProfileFile, _ProfileFile]


def read_profile_files(environ: Mapping[str, str]) -> ProfileFiles:
    """Read the profile from both shared files, once, for the resolvers below (each takes
    the result as ``files=``, so that a client's settings cost one read of each file)."""
    return _profile_files(environ)


def _profile_files(environ: Mapping[str, str]) -> ProfileFiles:
    """The profile in the shared credentials file, then in the config file."""
    home = environ.get("HOME") or str(Path.home())
    profile = _profile_name(environ)
    out: list[_ProfileFile] = []
    for variable, default, sections in (
        ("AWS_SHARED_CREDENTIALS_FILE", os.path.join(home, ".aws", "credentials"), (profile,)),
        # The config file names non-default profiles "profile NAME" (a bare NAME is
        # accepted too, as the AWS CLI does).
        ("AWS_CONFIG_FILE", os.path.join(home, ".aws", "config"),
         (f"profile {profile}", profile) if profile != "default" else ("default",)),
    ):
        chosen = environ.get(variable)
        path = os.path.expanduser(chosen or default)
        parser, readable = _read_ini(path)
        name = next((s for s in sections if parser.has_section(s)), None)
        out.append(_ProfileFile(
            path, variable if chosen else "", name or sections[0], readable,
            dict(parser.items(name)) if name is not None else None))
    return out[0], out[1]


def profile_sections(environ: Mapping[str, str],
                     files: ProfileFiles | None = None) -> list[dict[str, str]]:
    """The profile's settings, credentials file first, then the config file."""
    return [f.section for f in files or _profile_files(environ) if f.section is not None]


profile_name = _profile_name


@dataclass(frozen=True, slots=True)
class SharedConfig:
    """Both shared files, read once: every profile, and the config file's other sections.

    Values are stripped. Reading is blocking (``load_shared_config``); everything after
    is pure, so providers read the files once per ``load()`` through ``run_blocking``.
    """

    credentials_path: str
    config_path: str
    #: Sections of the shared credentials file (each a profile, by its bare name).
    credentials_sections: Mapping[str, Mapping[str, str]]
    #: Sections of the config file, by their full header ("profile dev", "sso-session x").
    config_sections: Mapping[str, Mapping[str, str]]

    def profile(self, name: str) -> dict[str, str] | None:
        """The profile's settings, the credentials file's winning over the config file's;
        None when neither file has it."""
        config = self._config_profile(name)
        creds = self.credentials_sections.get(name)
        if config is None and creds is None:
            return None
        merged = dict(config or {})
        merged.update(creds or {})
        return merged

    def _config_profile(self, name: str) -> Mapping[str, str] | None:
        # "profile NAME" is the config file's own spelling (the AWS CLI also reads
        # "[profile default]" and a bare "[NAME]").
        for header in (f"profile {name}", name):
            section = self.config_sections.get(header)
            if section is not None:
                return section
        return None

    def sso_session(self, name: str) -> Mapping[str, str] | None:
        return self.config_sections.get(f"sso-session {name}")

    def __repr__(self) -> str:  # the sections hold secrets: only their names are shown
        return (f"SharedConfig({self.credentials_path!r}: {sorted(self.credentials_sections)}, "
                f"{self.config_path!r}: {sorted(self.config_sections)})")


def _sections(path: str) -> dict[str, dict[str, str]]:
    parser, _readable = _read_ini(path)
    return {name: {k: v.strip() for k, v in parser.items(name)}
            for name in parser.sections()}


def shared_file_paths(environ: Mapping[str, str]) -> tuple[str, str]:
    """The shared credentials file's path and the config file's."""
    home = environ.get("HOME") or str(Path.home())
    return (
        os.path.expanduser(environ.get("AWS_SHARED_CREDENTIALS_FILE")
                           or os.path.join(home, ".aws", "credentials")),
        os.path.expanduser(environ.get("AWS_CONFIG_FILE") or os.path.join(home, ".aws", "config")),
    )


def load_shared_config(environ: Mapping[str, str]) -> SharedConfig:
    """Read both shared files (blocking; missing files are empty). A file that cannot be
    parsed is a ``UsageError`` naming the line, never quoting it."""
    credentials_path, config_path = shared_file_paths(environ)
    return SharedConfig(credentials_path, config_path, _sections(credentials_path),
                        _sections(config_path))


def _from_profile(environ: Mapping[str, str], option: str,
                  files: ProfileFiles | None = None) -> str | None:
    for section in profile_sections(environ, files):
        value = section.get(option)
        if value:
            return value.strip()
    return None


def _why_not(found: _ProfileFile) -> str:
    """Why this file gave no credentials (names only, never a value)."""
    if not found.readable:
        return "no such file" if not os.path.exists(found.path) else "cannot be read"
    if found.section is None:
        return f"no [{found.section_name}] section"
    has = [name for name in ("aws_access_key_id", "aws_secret_access_key")
           if found.section.get(name, "").strip()]
    if len(has) == 1:
        missing = "aws_secret_access_key" if has == ["aws_access_key_id"] else \
            "aws_access_key_id"
        return f"[{found.section_name}] has {has[0]} but no {missing}"
    unsupported = [name for name in _UNSUPPORTED if name in found.section]
    if unsupported:
        return (f"[{found.section_name}] uses {', '.join(unsupported)}, which are not "
                "static keys (the profile provider resolves them)")
    return f"[{found.section_name}] has no aws_access_key_id and aws_secret_access_key"


def resolve_credentials(
    explicit: Credentials | None, environ: Mapping[str, str],
    files: ProfileFiles | None = None,
) -> Credentials | CredentialsNotFound:
    """Explicit, then environment, then shared files; what was searched if none had any.

    Never anonymous unless ``explicit`` is ``Credentials.anonymous()``.
    """
    if explicit is not None:
        return explicit
    env_key, env_secret = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
    if env_key and env_secret:
        return Credentials(env_key, env_secret, environ.get("AWS_SESSION_TOKEN") or None)
    files = files or _profile_files(environ)
    for found in files:
        section = found.section or {}
        key, secret = section.get("aws_access_key_id"), section.get("aws_secret_access_key")
        if key and key.strip() and secret and secret.strip():
            token = section.get("aws_session_token") or None
            return Credentials(key.strip(), secret.strip(), token.strip() if token else None)
    if env_key or env_secret:
        only = "AWS_ACCESS_KEY_ID" if env_key else "AWS_SECRET_ACCESS_KEY"
        env_state = f"only {only} is set"
    else:
        env_state = "not set"
    profile = _profile_name(environ)
    profile_from = ("AWS_PROFILE" if environ.get("AWS_PROFILE") else
                    "AWS_DEFAULT_PROFILE" if environ.get("AWS_DEFAULT_PROFILE") else "")
    named = f"profile {profile!r}" + (f" (from {profile_from})" if profile_from else "")
    searched = [
        "the credentials argument (None)",
        f"the environment variables AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY ({env_state})",
    ]
    for what, found in zip(("shared credentials file", "config file"), files, strict=True):
        chosen = f", from {found.path_from}" if found.path_from else ""
        searched.append(f"{named} in the {what} {found.path}{chosen} ({_why_not(found)})")
    return CredentialsNotFound(tuple(searched))


def resolve_region(explicit: str | None, environ: Mapping[str, str],
                   files: ProfileFiles | None = None) -> str:
    region = (
        explicit
        or environ.get("AWS_REGION")
        or environ.get("AWS_DEFAULT_REGION")
        or _from_profile(environ, "region", files)
        or "us-east-1"
    )
    if any(c in region for c in "/\r\n "):
        raise UsageError(f"invalid region {region!r}")
    return region


def resolve_endpoint(explicit: str | None, environ: Mapping[str, str],
                     files: ProfileFiles | None = None) -> str | None:
    """A custom endpoint URL, or None for AWS's own regional endpoint."""
    return (
        explicit
        or environ.get("AWS_ENDPOINT_URL_S3")
        or environ.get("AWS_ENDPOINT_URL")
        or _from_profile(environ, "endpoint_url", files)
        or None
    )


def resolve_flag(variable: str, profile_key: str, environ: Mapping[str, str],
                 files: ProfileFiles | None = None) -> bool:
    """A true/false setting such as ``AWS_USE_FIPS_ENDPOINT`` (else the profile's
    ``use_fips_endpoint``), as AWS's SDKs read it."""
    value = environ.get(variable) or _from_profile(environ, profile_key, files) or "false"
    return value.strip().lower() == "true"
