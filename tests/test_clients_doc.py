"""docs/clients.md's openai-python snippets, run as written against a real daemon."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

from .conftest import Daemon

CLIENTS = Path(__file__).parent.parent / "docs" / "clients.md"


def snippet(name: str) -> str:
    """The Python block of docs/clients.md whose first line names ``name``."""
    for block in re.findall(r"```python\n(.*?)```", CLIENTS.read_text(), re.S):
        if block.startswith(f"# docs/clients.md: {name}."):
            return str(block)
    raise AssertionError(f"docs/clients.md has no {name} snippet")


@pytest.mark.parametrize(
    ("name", "printed"),
    [
        ("openai-python GA", "Hi from the GA client  [completed]\n"),
        ("openai-python beta", "Hi from the beta client  [completed]\n"),
    ],
)
async def test_the_openai_python_snippet_runs(
    client: Daemon, tmp_path: Path, name: str, printed: str
) -> None:
    """The snippet, run against the echo engine, prints the answer and its status."""
    script = tmp_path / "snippet.py"
    script.write_text(snippet(name))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        f"{client.host}:{client.port}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    assert (proc.returncode, out.decode(), err.decode()) == (0, printed, "")
