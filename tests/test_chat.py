"""`realtime-daemon chat` against a real daemon, both as subprocesses."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import aiohttp
import pytest
from websockets.asyncio.client import connect

from .conftest import PATH, StartDaemon, serve_json


async def chat(
    *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """Run ``realtime-daemon chat ARGS`` (with ``env`` added to the environment); its exit
    status, stdout and stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "realtime_daemon",
        "chat",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    async with asyncio.timeout(15):
        out, err = await proc.communicate(stdin or b"")
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def url(port: int) -> str:
    return f"ws://127.0.0.1:{port}{PATH}"


async def test_one_shot_prints_the_answer_and_exits_0(daemon: StartDaemon) -> None:
    """A prompt as arguments: the answer streamed to stdout, a newline, exit 0."""
    _, port = await serve_json(daemon, "--echo-delay-ms", "0")
    assert await chat(url(port), "Hi", "there 👋") == (0, "Hi there 👋\n", "")


async def test_prompt_from_stdin_and_stats(daemon: StartDaemon) -> None:
    """Without a prompt, stdin is the prompt; --stats reports on stderr."""
    _, port = await serve_json(daemon, "--echo-delay-ms", "0")
    code, out, err = await chat(url(port), "--stats", stdin=b"from a pipe\n")
    assert (code, out) == (0, "from a pipe\n")
    assert err.startswith("time to first chunk ") and " 12 chunks, " in err


async def test_json_prints_each_envelope_on_a_line(daemon: StartDaemon) -> None:
    """--json prints the raw envelopes, one per line, and nothing else."""
    _, port = await serve_json(daemon, "--echo-delay-ms", "0")
    code, out, _ = await chat(url(port), "--json", "ab")
    envelopes = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert [e["id"] for e in envelopes] == ["1", "2", "3"]
    assert envelopes[-1]["data"]["choices"][0]["finish_reason"] == "stop"


async def test_no_daemon_is_exit_3(daemon: StartDaemon) -> None:
    """Nothing listening: one line on stderr, exit 3."""
    _, port = await serve_json(daemon)
    code, out, err = await chat(url(port + 1 if port < 65535 else 1), "hi")
    assert (code, out) == (3, "")
    assert err.startswith("cannot connect to ws://127.0.0.1:") and err.count("\n") == 1


async def test_refused_upgrade_is_exit_4_with_the_daemons_reason(
    daemon: StartDaemon, tmp_path: Path
) -> None:
    """A 401 shows its status and the daemon's sentence; the right token gets in."""
    tokens = tmp_path / "tokens"
    tokens.write_text("right-token\n")
    _, port = await serve_json(daemon, "--auth-token-file", str(tokens))
    code, _, err = await chat(url(port), "--token", "wrong", "hi")
    assert (code, err) == (4, "refused: HTTP 401 a valid bearer token is required\n")
    token_file = tmp_path / "mine"
    token_file.write_text("right-token\n")
    assert await chat(url(port), "--token-file", str(token_file), "in") == (0, "in\n", "")


async def test_close_with_a_code_is_exit_5(daemon: StartDaemon) -> None:
    """A daemon that closes (here 1009, a request over its size limit): code shown, exit 5."""
    _, port = await serve_json(daemon, "--max-message-size", "50")
    code, _, err = await chat(url(port), "x" * 100)
    assert (code, err) == (5, "closed by the daemon: 1009\n")


async def test_error_envelope_is_exit_6_with_its_code(daemon: StartDaemon, tmp_path: Path) -> None:
    """An answer that is an error envelope: its code and message shown, exit 6."""
    config = tmp_path / "daemon.toml"
    config.write_text('[[models]]\nname = "only"\nengine = "echo"\n')
    _, port = await serve_json(daemon, "--config", str(config))
    code, _, err = await chat(url(port), "--model", "other", "hi")
    assert code == 6
    assert err == "error: model_not_found: unknown model 'other': available models: only\n"


@pytest.mark.parametrize("header", ["no-colon", ": empty name"])
async def test_bad_header_is_exit_2(header: str) -> None:
    """--header must be 'Name: value'."""
    code, _, err = await chat("--header", header, "hi")
    assert code == 2
    assert "is not 'Name: value'" in err


async def test_full_daemon_is_exit_4_with_retry_after(daemon: StartDaemon) -> None:
    """A 503 (no connection left) shows the daemon's reason and its Retry-After."""
    _, port = await serve_json(daemon, "--max-connections", "1")
    async with connect(url(port)):
        code, _, err = await chat(url(port), "hi")
    assert (code, err) == (
        4,
        "refused: HTTP 503 too many connections, retry later (Retry-After: 1 s)\n",
    )


@pytest.mark.parametrize("address", ["http://127.0.0.1:{port}", "127.0.0.1:{port}"])
async def test_an_http_url_or_host_port_is_the_daemons_address(
    daemon: StartDaemon, address: str
) -> None:
    """http://HOST:PORT and HOST:PORT as the first argument: ws://, with the default path."""
    _, port = await serve_json(daemon, "--echo-delay-ms", "0")
    assert await chat(address.format(port=port), "hi") == (0, "hi\n", "")


async def test_the_address_comes_from_realtime_daemon_url(daemon: StartDaemon) -> None:
    """Without an address, REALTIME_DAEMON_URL is the daemon's, and every argument is prompt."""
    _, port = await serve_json(daemon, "--echo-delay-ms", "0")
    env = {"REALTIME_DAEMON_URL": f"127.0.0.1:{port}"}
    assert await chat("note:", "hi", env=env) == (0, "note: hi\n", "")


async def test_nothing_listening_is_said_in_the_systems_words(daemon: StartDaemon) -> None:
    """A refused connection to a ws:// URL: "Connection refused", no aiohttp "ssl:default"."""
    _, port = await serve_json(daemon)
    closed = url(port + 1 if port < 65535 else 1)
    code, _, err = await chat(closed, "hi")
    assert (code, err) == (3, f"cannot connect to {closed}: Connection refused\n")


async def test_a_wrong_path_names_its_status_once(daemon: StartDaemon) -> None:
    """A 404 (a path the daemon does not serve) reads "HTTP 404 Not Found", the code once."""
    _, port = await serve_json(daemon)
    code, _, err = await chat(f"ws://127.0.0.1:{port}/wrong", "hi")
    assert (code, err) == (4, "refused: HTTP 404 Not Found\n")


async def test_a_refused_upgrade_is_asked_once(daemon: StartDaemon, tmp_path: Path) -> None:
    """chat asks for a refused upgrade once: the daemon counts one refusal, not two."""
    tokens = tmp_path / "tokens"
    tokens.write_text("right-token\n")
    _, port = await serve_json(daemon, "--auth-token-file", str(tokens))
    assert (await chat(url(port), "--token", "wrong", "hi"))[0] == 4
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        metrics = await response.text()
    assert 'realtime_daemon_upgrades_refused_total{reason="unauthorized"} 1.0' in metrics


async def test_an_oversized_message_is_logged_with_the_limit_given(daemon: StartDaemon) -> None:
    """--max-message-size 200: the close's log line names 200, not aiohttp's 201."""
    process, port = await serve_json(daemon, "--max-message-size", "200")
    assert (await chat(url(port), "x" * 300))[0] == 5
    closed = await process.wait_for_event("connection_closed")
    assert (closed["code"], closed["reason"]) == (1009, "message over the limit of 200 bytes")
