"""The ``openai`` text-to-speech engine: any OpenAI-compatible ``POST /v1/audio/speech``.

OpenAI, Kokoro-FastAPI, speaches and vLLM-Omni take the same JSON body:
``model``, ``input``, ``voice``, ``speed`` and ``response_format``; it asks for
``pcm`` (PCM16 little-endian mono at 24 kHz, no header) and hands the body on
as each read brings it (:class:`SpeechAnswer`, a
:class:`~realtime_daemon.engines.openai.h1.Consumer` fed inside the
connection's callbacks), an odd byte kept for the next read. It uses the
openai chat engine's HTTP/1.1 client (a pool of keep-alive connections, its own).

- Each synthesis starts at the next replica, round-robin, and fails over to
  the others, in order, on a connection failure, a 5xx or 429, or an answer
  cut before any audio; a 4xx is the request's fault (``upstream_error``).
- ``--tts-timeout`` bounds the wait for the first audio (failovers included)
  and each silence after it (``timeout``).
- A cancelled synthesis aborts its connection: the upstream sees it closed,
  and it is not kept for another request.
- Clients are told a replica's index, never its URL; the log has the URL.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable

import msgspec
import structlog

from realtime_daemon.audio.speech import SpeechRequest, SynthesisFailed
from realtime_daemon.config import Config
from realtime_daemon.engines.openai.h1 import (
    Connection,
)
from realtime_daemon.engines.speech.answer import (
    RETRY_STATUSES,
    AttemptFailed,
    lost,
    upstream_words,
)
from realtime_daemon.engines.speech.replicas import Replicas

__all__ = ["DEFAULT_VOICE", "NOT_PCM", "OpenAISynthesizer", "SpeechAnswer"]

logger = structlog.get_logger("realtime_daemon")

DEFAULT_VOICE = "alloy"
"""The voice asked for when neither the session nor ``--tts-voice`` names one."""
NOT_PCM = frozenset(
    {"application/json", "audio/mpeg", "audio/mp3", "audio/wav", "audio/x-wav", "audio/wave"}
    | {"audio/ogg", "audio/opus", "audio/aac", "audio/flac", "application/ogg"}
)
"""Media types of a 2xx answer that are not the raw PCM asked for (``text/*`` neither);
others (``audio/pcm``, ``application/octet-stream``, none) are read as PCM."""

_ERROR_BODY_LIMIT = 4096


class _Body(msgspec.Struct):
    model: str
    input: str
    voice: str
    speed: float
    response_format: str = "pcm"


_encoder = msgspec.json.Encoder()


class SpeechAnswer:
    """One attempt's answer: PCM handed to ``audio`` as it comes; :meth:`result` at its end.

    Args:
        name: the replica as the client is told of it (``tts replica 0``).
        audio: called with each even-length piece of PCM.
        first: called once, before the first piece.
    """

    def __init__(
        self, name: str, audio: Callable[[bytes], None], first: Callable[[], None]
    ) -> None:
        self.name = name
        self._audio = audio
        self._first = first
        self.connection: Connection | None = None
        self._done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._status = 0
        self._reason = ""
        self._error: bytearray | None = None  # a refusal's body
        self._odd = b""  # a sample's first byte, waiting for its second
        self.streamed = False  # audio went out: no other replica may be asked

    async def result(self) -> None:
        """Once the answer ended, whole.

        Raises:
            AttemptFailed: the answer failed or is no PCM.
            StaleConnection: a kept-alive connection was closed before answering.
            Exception: what ``audio`` raised, as it raised it.
        """
        await self._done

    def failure(self, code: str, what: str, *, retry: bool | None = None) -> AttemptFailed:
        """A failure of this attempt, retried unless told or audio went out."""
        retry = not self.streamed if retry is None else retry
        return AttemptFailed(code, f"{self.name} {what}", retry=retry)

    def close(self) -> None:
        """An answer not read to its end (cancelled, failed) drops its connection."""
        # A cancelled caller's await cancelled the future too: that answer is unread.
        if self._done.cancelled() or not self._done.done():
            if self.connection is not None:
                self.connection.abort()
            self._done.cancel()

    # -- h1.Consumer ---------------------------------------------------------------

    def head(self, status: int, reason: str, media_type: str) -> None:
        self._status, self._reason = status, reason
        if status // 100 != 2:
            self._error = bytearray()
        elif media_type in NOT_PCM or media_type.startswith("text/"):
            what = f"answered {media_type}, not PCM"
            self._stop(self.failure("invalid_answer", what, retry=False))

    def body(self, data: bytes) -> None:
        if self._done.done():
            return
        if self._error is not None:
            self._error += data
            if len(self._error) >= _ERROR_BODY_LIMIT:
                self._stop(self._refused())  # the rest is not read
            return
        if self._odd:
            data = self._odd + data
        cut = len(data) & ~1
        self._odd = data[cut:]
        if not cut:
            return
        try:
            if not self.streamed:
                self.streamed = True
                self._first()
            self._audio(data[:cut] if self._odd else data)
        except Exception as exc:  # the caller's own: it gets it back from synthesize
            self._stop(exc)

    def end(self) -> None:
        if self._done.done():
            return
        if self._error is not None:
            self._done.set_exception(self._refused())
        elif self._odd:
            what = "sent an odd number of bytes: not PCM16"
            self._done.set_exception(self.failure("invalid_answer", what))
        else:
            self._done.set_result(None)

    def failed(self, exc: Exception) -> None:
        if not self._done.done():
            self._done.set_exception(lost(self, exc, "sent no audio for too long"))

    def _stop(self, exc: Exception) -> None:
        if self.connection is not None:
            self.connection.abort()
        if not self._done.done():
            self._done.set_exception(exc)

    def _refused(self) -> AttemptFailed:
        """A non-2xx answer: the upstream's own words, and whether to ask another."""
        assert self._error is not None
        detail = upstream_words(bytes(self._error[:_ERROR_BODY_LIMIT])) or self._reason
        status = self._status
        return self.failure(
            "upstream_unavailable" if status >= 500 else "upstream_error",
            f"answered {status}: {detail or 'no detail'}",
            retry=status in RETRY_STATUSES and not self.streamed,
        )


class OpenAISynthesizer:
    """Speaks each piece on an OpenAI-compatible server, failing over across replicas.

    Args:
        config: the daemon's settings (``tts_url``, ``tts_model``, ``tts_api_key``,
            ``tts_voice``, ``tts_timeout``). Building it opens nothing.

    Raises:
        ValueError: no ``tts_url`` is configured, or one is not http(s).
    """

    name = "openai"
    passthrough = True  # the upstream knows its voices

    def __init__(self, config: Config) -> None:
        if not config.tts_url:
            raise ValueError("needs at least one --tts-url")
        self.voice = config.tts_voice or DEFAULT_VOICE
        self._model = config.tts_model
        self._timeout = config.tts_timeout
        self._replicas = Replicas(
            config.tts_url,
            "/audio/speech",
            [
                b"Accept: audio/pcm, application/octet-stream, */*",
                b"Content-Type: application/json",
            ],
            config.tts_api_key,
            b"Content-Length: ",
            self._timeout,
        )

    def __repr__(self) -> str:
        return f"OpenAISynthesizer(replicas={len(self._replicas)})"  # no key, no URL

    async def aclose(self) -> None:
        """Close the connection pool."""
        self._replicas.close()

    async def synthesize(self, request: SpeechRequest, audio: Callable[[bytes], None]) -> None:
        """Speak ``request``, handing PCM to ``audio`` as it streams in.

        Raises:
            SynthesisFailed: every replica failed (the last failure's code), one
                refused the request, or no audio within ``tts_timeout``.
        """
        body = _encoder.encode(
            _Body(
                model=request.model or self._model,
                input=request.text,
                voice=request.voice,
                speed=request.speed,
            )
        )
        tail = b"%d\r\n\r\n%b" % (len(body), body)
        replicas = self._replicas
        order = replicas.order()
        errors: list[str] = []
        try:
            async with asyncio.timeout(self._timeout) as deadline:
                for replica in order:
                    try:
                        # From the first audio on, the watchdog times the silences.
                        first = lambda: deadline.reschedule(None)  # noqa: E731
                        await replicas.attempt(
                            replica,
                            replicas.heads[replica] + tail,
                            functools.partial(SpeechAnswer, f"tts replica {replica}", audio, first),
                        )
                    except AttemptFailed as exc:
                        errors.append(exc.message)
                        logger.warning(
                            "tts_failed",
                            url=replicas.urls[replica],
                            error=exc.message,
                            code=exc.code,
                        )
                        if exc.retry and replica != order[-1]:
                            continue
                        raise SynthesisFailed(exc.code, "; ".join(errors)) from None
                    return
        except TimeoutError:
            logger.warning("tts_failed", error="timed out", code="timeout")
            what = f"no audio within {self._timeout:g} s"
            raise SynthesisFailed("timeout", "; ".join([*errors, what])) from None
