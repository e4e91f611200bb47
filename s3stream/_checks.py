"""Argument checks of the public API, run before any I/O (``UsageError``).

Messages name the option and the type of what was passed; values are shown only where
they cannot be secret (numbers, the enumerated strings).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .exceptions import UsageError


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT"


#: "Use the client's setting": lets ``checksum=None`` mean "no checksum" per upload.
DEFAULT: Any = _Default()


def type_name(value: object) -> str:
    return type(value).__name__


def check_count(name: str, value: object) -> int:
    # bool is an int to Python, but True as a count is a mistake, not a 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{name} must be an int >= 1, not {type_name(value)}")
    if value < 1:
        raise UsageError(f"{name} must be an int >= 1, not {value}")
    return value


def check_seconds(name: str, value: object, *, optional: bool) -> float | None:
    if value is None and optional:
        return None
    none = " or None (no limit)" if optional else ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UsageError(
            f"{name} must be a positive number of seconds{none}, not {type_name(value)}")
    # NaN compares false with everything, so "value <= 0" alone would let it through.
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"{name} must be a positive number of seconds{none}, not {value}")
    return value


def check_optional_str(name: str, value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise UsageError(f"{name} must be a str or None, not {type_name(value)}")
    if value == "":
        raise UsageError(f"{name} must not be empty (pass None to use the default)")
    return value


def check_callable(name: str, value: object) -> None:
    if value is not None and not callable(value):
        raise UsageError(f"{name} must be callable or None, not {type_name(value)}")


def check_mapping(name: str, value: object) -> None:
    if value is not None and not isinstance(value, Mapping):
        raise UsageError(
            f"{name} must be a mapping (such as a dict) or None, not {type_name(value)}")


def check_concurrency(concurrency: object) -> int:
    return check_count("concurrency", concurrency)


def check_part_size(part_size: object) -> int | None:
    if part_size is not None and (isinstance(part_size, bool) or not isinstance(part_size, int)):
        raise UsageError(
            f"part_size must be an int number of bytes or None, not {type_name(part_size)}")
    return part_size


def check_upload_id(upload_id: object) -> str:
    if not isinstance(upload_id, str) or not upload_id or \
            any(c in upload_id for c in "\r\n\0"):
        raise UsageError("upload_id must be the non-empty string CreateMultipartUpload "
                         f"returned, not {type_name(upload_id)}")
    return upload_id


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
