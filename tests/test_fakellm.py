"""The openai engine against fakellm, an OpenAI-compatible mock server nobody here wrote."""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .conftest import PATH, StartServer, receive_envelope, request

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("fakellm") is None, reason="fakellm is not installed"
)

RULES = """
version: 1
defaults:
  fallback: deterministic_echo
rules:
  - name: greet
    when: { messages_contain: "hello" }
    respond: { content: "Hello from fakellm, streamed." }
"""


@pytest.fixture
async def fakellm(tmp_path: Path) -> AsyncIterator[str]:
    """A fakellm server on a free port; its base URL."""
    (tmp_path / "fakellm.yaml").write_text(RULES)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from fakellm.cli import main; main()",
        "serve",
        "--port",
        str(port),
        "--config",
        str(tmp_path / "fakellm.yaml"),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    try:
        async with asyncio.timeout(30):
            # uvicorn says so once it has bound the port.
            while b"Uvicorn running on" not in (line := await proc.stderr.readline()):
                assert line, "fakellm exited"
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        await proc.wait()


async def test_answer_streams_from_fakellm(serve_engine: StartServer, fakellm: str) -> None:
    """The daemon relays fakellm's streamed answer, chunk by chunk, as envelopes."""
    client = await serve_engine(engine_name="openai", upstream_url=(fakellm,))
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("hello there", model="gpt-4"))
        envelopes = []
        while not envelopes or envelopes[-1]["data"]["choices"][0]["finish_reason"] is None:
            envelopes.append(await receive_envelope(ws))
    text = "".join(e["data"]["choices"][0]["delta"].get("content", "") for e in envelopes)
    assert text == "Hello from fakellm, streamed."
    assert envelopes[0]["data"]["choices"][0]["delta"]["role"] == "assistant"
    assert {e["data"]["object"] for e in envelopes} == {"chat.completion.chunk"}
    assert [e["id"] for e in envelopes] == [str(n) for n in range(1, len(envelopes) + 1)]
