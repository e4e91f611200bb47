"""The public API is discoverable: ``dir()`` and ``help()`` show it, lazy parts included,
and the documented signature is the public one (the test hooks stay out of it).

What depends on a fresh interpreter (what is loaded, and when) runs in a subprocess.
"""

from __future__ import annotations

import inspect
import pydoc
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import s3stream

README = Path(__file__).resolve().parent.parent / "README.md"
TEST_HOOKS = ("environ", "clock", "sleep", "rand")


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_dir_lists_everything_in_all() -> None:
    assert set(s3stream.__all__) <= set(dir(s3stream))
    assert dir(s3stream) == sorted(dir(s3stream))
    # Nothing private is advertised beyond what a plain module shows anyway.
    assert not [name for name in dir(s3stream) if name.startswith("_") and name != "__version__"]


def test_lazy_names_are_in_dir_before_first_use_without_loading_them() -> None:
    out = _run("""
        import sys, s3stream
        lazy = sorted(s3stream._LAZY)
        names = dir(s3stream)
        print(all(name in names for name in lazy))
        print(any(name in vars(s3stream) for name in lazy))  # dir() loaded none of them
        print("aiohttp" in sys.modules)
        print(s3stream.S3Client.__name__, "aiohttp" in sys.modules)  # first use loads them
    """)
    assert out.split("\n")[:4] == ["True", "False", "False", "S3Client True"]


def test_import_does_not_load_aiohttp() -> None:
    out = _run("""
        import sys, s3stream
        print(sorted(m for m in sys.modules if m == "aiohttp" or m.startswith("aiohttp.")))
        print("s3stream._client" in sys.modules)
    """)
    assert out.split("\n")[:2] == ["[]", "False"]


def test_the_client_loads_awscrt_only_for_a_crc64nvme() -> None:
    # awscrt's native library is ~5 MiB of resident memory: only a CRC64NVME object's
    # download needs it.
    out = _run("""
        import sys, s3stream, s3stream._download
        s3stream.S3Client
        print("awscrt" in sys.modules)
        from s3stream import _ranges
        _ranges._crc_function("CRC32C")
        print("awscrt" in sys.modules)
        print(_ranges._crc_function("CRC64NVME") is not None, "awscrt" in sys.modules)
    """)
    assert out.split("\n")[:3] == ["False", "False", "True True"]


def test_help_lists_the_lazy_classes() -> None:
    # In a fresh interpreter, where nothing lazy has been loaded yet.
    out = _run("""
        import pydoc, s3stream
        print(pydoc.render_doc(s3stream, renderer=pydoc.plaintext))
    """)
    for name in ("S3Client", "Upload", "UploadResult"):
        assert f"class {name}(" in out, name  # documented in full, not only named
    classes = [name for name in s3stream.__all__ if inspect.isclass(getattr(s3stream, name))]
    missing = [name for name in classes if f"class {name}(" not in out]
    assert missing == []
    # The module docstring names the public API.
    description = out.split("DESCRIPTION", 1)[1].split("PACKAGE CONTENTS", 1)[0]
    for name in classes:
        assert re.search(rf"\b{name}\b", description), name


def test_s3_client_documents_its_test_hooks_as_such() -> None:
    parameters = inspect.signature(s3stream.S3Client).parameters
    for hook in TEST_HOOKS:
        assert parameters[hook].kind is inspect.Parameter.KEYWORD_ONLY
        assert parameters[hook].default is None
    doc = inspect.getdoc(s3stream.S3Client) or ""
    hooks_paragraph = doc.split("For tests:", 1)[1]
    for hook in TEST_HOOKS:
        assert f"``{hook}``" in hooks_paragraph, hook
    assert "For tests:" in pydoc.render_doc(s3stream.S3Client, renderer=pydoc.plaintext)


def test_readme_signature_leaves_the_test_hooks_out() -> None:
    api = README.read_text().split("\n## API\n", 1)[1].split("```python\n", 1)[1]
    api = api.split("```", 1)[0]
    start = api.index("S3Client(*")
    end = api.index("\n\n", start)  # the signature is the first paragraph of the block
    signature = api[start:end]
    assert "endpoint=None" in signature and "credentials=None" in signature
    for hook in TEST_HOOKS:
        assert not re.search(rf"\b{hook}\s*=", signature), (hook, signature)
