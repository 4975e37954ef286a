"""``realtime-daemon chat``: talk to a daemon from the terminal, or from a script.

One-shot (a prompt as arguments, or text on stdin): one request, its answer
streamed to stdout, then a newline and exit 0. Every failure is one line on
stderr and an exit status of its own (:data:`EXIT_STATUSES`).
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import click

from realtime_daemon.tools.client import (
    Reach,
    Refusals,
    connect_failure,
    connection_options,
    daemon_url,
    is_address,
)
from realtime_daemon.tools.spoken import (
    WavError,
    answer_audio,
    read_wav,
    realtime_url,
    spoken_turn,
)

__all__ = ["EXIT_STATUSES", "ChatFailed", "chat"]

EXIT_STATUSES = {
    "connection": 3,  # no connection, or it was lost without a Close
    "refused": 4,  # the upgrade was refused (401, 403, 503, ...)
    "closed": 5,  # the daemon closed with a code before the answer ended
    "error": 6,  # the answer ended with an error envelope
}


class ChatFailed(Exception):
    """How a chat failed: ``kind`` (a key of :data:`EXIT_STATUSES`) and one line."""

    def __init__(self, kind: str, line: str) -> None:
        super().__init__(line)
        self.kind = kind


class Options:
    """What the command line says about the connection and the request."""

    def __init__(self, **options: Any) -> None:
        self.url: str = options["url"]
        self.model: str = options["model"]
        self.system: str | None = options["system"]
        self.temperature: float | None = options["temperature"]
        self.max_tokens: int | None = options["max_tokens"]
        self.json: bool = options["json_output"]
        self.stats: bool = options["stats"]
        self.unix: str | None = options["unix"]
        reach = Reach.from_options(options)
        self.headers = reach.header_dict()
        self.ssl = reach.ssl()

    def request(self, messages: list[dict[str, str]], request_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": messages, "request_id": request_id}
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        return body


async def one_shot(options: Options, prompt: str) -> None:
    """Send one request and stream its answer to stdout.

    Raises:
        ChatFailed: the connection, the upgrade or the answer failed.
    """
    messages = [{"role": "system", "content": options.system}] if options.system else []
    messages.append({"role": "user", "content": prompt})
    conversation = Conversation(options)
    await conversation.open()
    try:
        await conversation.ask(messages, "1")
    finally:
        await conversation.close()
    if not options.json:
        sys.stdout.write("\n")


async def spoken(options: Options, pcm: bytes, heard: bytearray | None = None) -> None:
    """Send ``pcm`` as one spoken turn over the Realtime dialect; print the answer (and
    keep a spoken answer's audio in ``heard``).

    Raises:
        ChatFailed: the connection, the upgrade or the turn failed.
    """
    options.url = realtime_url(options.url, options.model)
    connector = aiohttp.UnixConnector(path=options.unix) if options.unix else None
    refusals = Refusals()
    async with aiohttp.ClientSession(
        connector=connector, trace_configs=[refusals.trace()]
    ) as session:
        ws = await _connect(session, options, refusals)
        try:
            await spoken_turn(ws, pcm, heard)
        except RuntimeError as exc:
            raise ChatFailed("error", str(exc)) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise ChatFailed("connection", connect_failure(options.url, exc)) from None
        finally:
            await ws.close()
    sys.stdout.write("\n")


async def _connect(
    session: aiohttp.ClientSession, options: Options, refusals: Refusals
) -> aiohttp.ClientWebSocketResponse:
    try:
        return await session.ws_connect(
            options.url, headers=options.headers, ssl=options.ssl, autoclose=False
        )
    except aiohttp.WSServerHandshakeError as exc:
        raise ChatFailed("refused", refusals.describe(exc)) from None
    except (aiohttp.ClientError, OSError) as exc:
        raise ChatFailed("connection", connect_failure(options.url, exc)) from None


class Conversation:
    """One connection and its turns. Interactively it runs in an event-loop thread of its
    own, so that the terminal (readline, Ctrl-C) stays in the main thread and pings are
    answered (by the reader task) while the user types."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._inbox: asyncio.Queue[aiohttp.WSMessage] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None

    async def open(self) -> None:
        options = self.options
        connector = aiohttp.UnixConnector(path=options.unix) if options.unix else None
        refusals = Refusals()
        self._session = aiohttp.ClientSession(connector=connector, trace_configs=[refusals.trace()])
        try:
            self._ws = await _connect(self._session, options, refusals)
        except ChatFailed:
            await self._session.close()
            raise
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._ws is not None
        while True:
            msg = await self._ws.receive()  # pings are answered in here
            await self._inbox.put(msg)
            if msg.type is not aiohttp.WSMsgType.TEXT:
                return

    async def ask(self, messages: list[dict[str, str]], request_id: str) -> tuple[str, bool]:
        """Send one turn and stream its answer to stdout (no newline after it).

        Returns:
            the answer's text, and whether it was cancelled.

        Raises:
            ChatFailed: the daemon closed, the connection was lost, or the
                answer ended with an error envelope.
        """
        assert self._ws is not None
        options, out = self.options, sys.stdout
        await self._ws.send_json(options.request(messages, request_id))
        started, first, chunks, text = time.monotonic(), 0.0, 0, ""
        while True:
            msg = await self._inbox.get()
            if msg.type is aiohttp.WSMsgType.CLOSE:
                reason = f"closed by the daemon: {msg.data} {msg.extra or ''}".strip()
                raise ChatFailed("closed", reason)
            if msg.type is not aiohttp.WSMsgType.TEXT:
                raise ChatFailed("connection", "connection lost")
            envelope = json.loads(msg.data)
            if options.json:
                out.write(msg.data + "\n")
            if envelope.get("event") == "error":
                code = (envelope.get("error") or {}).get("code", "error")
                raise ChatFailed("error", f"error: {code}: {envelope['comment'][0]}")
            if envelope.get("event") == "cancelled":
                return text, True
            choice = (envelope.get("data") or {}).get("choices", [{}])[0]
            piece = choice.get("delta", {}).get("content") or ""
            text += piece
            chunks += 1
            first = first or time.monotonic()
            if not options.json:
                out.write(piece)
            out.flush()
            if choice.get("finish_reason"):
                break
        if options.stats:
            elapsed = time.monotonic() - started
            click.echo(
                f"time to first chunk {(first - started) * 1000:.1f} ms, {chunks} chunks, "
                f"{chunks / elapsed if elapsed else 0:.0f} chunks/s",
                err=True,
            )
        return text, False

    async def cancel(self, request_id: str) -> None:
        assert self._ws is not None
        await self._ws.send_json({"type": "request.cancel", "request_id": request_id})

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
        if self._session is not None:
            await self._session.close()


def interactive(options: Options) -> None:
    """The prompt loop: readline in this thread, the connection in another.

    Raises:
        ChatFailed: the connection, the upgrade or the daemon failed.
    """
    import readline  # noqa: F401 (line editing and history for input(); a terminal only)

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def run(coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    conversation = Conversation(options)
    run(conversation.open())
    click.echo(
        f"connected to {options.url}; /reset clears the conversation, /quit or "
        "Ctrl-D ends it, Ctrl-C stops an answer",
        err=True,
    )
    history: list[dict[str, str]] = []
    turn = 0
    try:
        while True:
            try:
                line = input("> ").strip()
            except KeyboardInterrupt:
                print()
                continue
            except EOFError:
                print()
                break
            if line == "/quit":
                break
            if line == "/reset":
                history.clear()
                click.echo("(conversation cleared)", err=True)
                continue
            if not line:
                continue
            turn += 1
            system = [{"role": "system", "content": options.system}] if options.system else []
            history.append({"role": "user", "content": line})
            answer = asyncio.run_coroutine_threadsafe(
                conversation.ask(system + history, str(turn)), loop
            )
            request_id = str(turn)
            text = _answered(answer, lambda: run(conversation.cancel(request_id)))  # noqa: B023
            history.append({"role": "assistant", "content": text})
    finally:
        run(conversation.close())
        loop.call_soon_threadsafe(loop.stop)
        thread.join()


def _answered(answer: Any, cancel: Callable[[], None]) -> str:
    """Wait for one answer, printed as it streams; Ctrl-C asks the daemon to stop it.

    Returns:
        its text (empty when it failed in band: the session goes on).

    Raises:
        ChatFailed: the connection or the daemon failed.
    """
    while True:
        try:
            text, cancelled = answer.result()
        except KeyboardInterrupt:
            cancel()
        except ChatFailed as failed:
            if failed.kind != "error":
                raise
            click.echo(f"\n{failed}", err=True)  # an answer's error: the session goes on
            print()
            return ""
        else:
            print(" [stopped]" if cancelled else "")
            return str(text)


_EPILOG = """\b
Exit status: 0 the answer was printed; 2 a bad option; 3 no connection, or
it was lost; 4 the upgrade was refused (401, 403, 503: the daemon's reason
is shown); 5 the daemon closed with a code (code and reason shown); 6 the
answer ended with an error envelope (its code and message shown).
"""


@click.command(
    short_help="Send a prompt and print the answer as it streams.",
    epilog=_EPILOG,
    context_settings={"show_default": True},
)
@click.argument("url", required=False)
@click.argument("prompt", nargs=-1)
@click.option("--model", default="chat", help="The request's model.")
@click.option("--system", default=None, help="A system message before the prompt.")
@click.option("--temperature", type=float, default=None, help="Sampling temperature.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=None, help="Longest answer.")
@connection_options
@click.option("--unix", default=None, help="Connect to a daemon on this Unix socket.")
@click.option("--json", "json_output", is_flag=True, help="Print raw envelopes, one per line.")
@click.option("--stats", is_flag=True, help="Time to first chunk, chunks and chunks/s on stderr.")
@click.option(
    "--audio",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Send this WAV file (16-bit PCM) as a spoken turn, over the Realtime API (the"
    " daemon needs --stt); the transcript goes to stderr, the answer to stdout.",
)
@click.option(
    "--save-audio",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="With --audio: write the spoken answer (a daemon with --tts) to this WAV file.",
)
@click.option(
    "--play", is_flag=True, help="With --audio: play the spoken answer (paplay, aplay or ffplay)."
)
def chat(url: str | None, prompt: tuple[str, ...], **options: Any) -> None:
    """Send PROMPT to the daemon at URL and print the answer as it streams.

    Without PROMPT, the text on stdin is the prompt; on a terminal, an
    interactive conversation: each turn sends the earlier ones along, Ctrl-C
    stops the answer in progress, /reset clears the conversation, /quit or
    Ctrl-D ends it.

    URL is the first argument when it starts with ws://, wss://, http:// or
    https://, or is exactly HOST:PORT (http is taken as ws, https as wss;
    without a path, /v1/realtime); otherwise the first argument starts the
    PROMPT, and URL is $REALTIME_DAEMON_URL, or ws://127.0.0.1:8000/v1/realtime.
    With --unix, only its path counts.
    """
    if url is not None and not is_address(url):
        prompt, url = (url, *prompt), None
    url = daemon_url(url)
    text = " ".join(prompt)
    audio: Path | None = options.pop("audio")
    save: Path | None = options.pop("save_audio")
    to_play: bool = options.pop("play")
    try:
        if audio is not None:
            if text:
                raise click.UsageError("give a PROMPT or --audio, not both")
            try:
                pcm = read_wav(audio)
            except WavError as exc:
                raise click.BadParameter(str(exc), param_hint="--audio") from None
            heard = bytearray()
            asyncio.run(spoken(Options(url=url, **options), pcm, heard))
            answer_audio(bytes(heard), save, to_play)
            return
        if save is not None or to_play:
            raise click.UsageError("--save-audio and --play go with --audio")
        if not text and sys.stdin.isatty():
            interactive(Options(url=url, **options))
            return
        text = text or sys.stdin.read().strip()
        asyncio.run(one_shot(Options(url=url, **options), text))
    except ChatFailed as failed:
        click.echo(str(failed), err=True)
        sys.exit(EXIT_STATUSES[failed.kind])
    except KeyboardInterrupt:
        sys.exit(130)
