"""The ``openai`` speech-to-text engine: any OpenAI-compatible ``/v1/audio/transcriptions``.

OpenAI, vLLM serving Whisper or Voxtral, speaches and faster-whisper servers
take the same upload: ``multipart/form-data`` with the audio as a WAV file
part, ``model``, ``language`` and ``prompt``. It always asks ``stream=true``
and takes either answer (:mod:`.answer`): streamed pieces go to ``delta`` as
they arrive. It uses the openai chat engine's HTTP/1.1 client (a pool of
keep-alive connections, its own).

- Each transcription starts at the next replica, round-robin, and fails over
  to the others, in order, on a connection failure, a 5xx or 429, or an
  answer cut before any piece was streamed; a 4xx is the request's fault and
  is not retried (``upstream_error``).
- ``--stt-timeout`` bounds the whole transcription, failovers included
  (``timeout``).
- Clients are told a replica's index, never its URL; the log has the URL.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
from collections.abc import Callable

import structlog

from realtime_daemon import __version__
from realtime_daemon.audio.speech import Transcript, TranscriptionFailed, TranscriptionRequest
from realtime_daemon.audio.wav import wav_bytes
from realtime_daemon.config import Config
from realtime_daemon.engines.openai.h1 import Origin, Pool, StaleConnection
from realtime_daemon.engines.openai.watchdog import Watchdog
from realtime_daemon.engines.speech.answer import AttemptFailed, TranscriptAnswer

__all__ = ["DEFAULT_MODEL", "MAX_CONNECTIONS", "OpenAITranscriber"]

logger = structlog.get_logger("realtime_daemon")

DEFAULT_MODEL = "whisper-1"
"""The model asked for when neither ``--stt-model`` nor the session names one."""
MAX_CONNECTIONS = 256
"""Upstream connections open at once, per process; more transcriptions wait for one."""


def _field(boundary: bytes, name: str, value: str) -> bytes:
    return b'--%b\r\nContent-Disposition: form-data; name="%b"\r\n\r\n%b\r\n' % (
        boundary,
        name.encode(),
        value.encode(),
    )


def form(request: TranscriptionRequest, model: str, boundary: bytes) -> bytes:
    """The ``multipart/form-data`` body of ``request``: its audio as ``audio.wav``."""
    parts = [
        b'--%b\r\nContent-Disposition: form-data; name="file"; filename="audio.wav"\r\n'
        b"Content-Type: audio/wav\r\n\r\n" % boundary,
        wav_bytes(request.audio, request.rate),
        b"\r\n",
        _field(boundary, "model", model),
    ]
    if request.language:
        parts.append(_field(boundary, "language", request.language))
    if request.prompt:
        parts.append(_field(boundary, "prompt", request.prompt))
    parts.append(_field(boundary, "response_format", "json"))
    parts.append(_field(boundary, "stream", "true"))
    parts.append(b"--%b--\r\n" % boundary)
    return b"".join(parts)


class OpenAITranscriber:
    """Transcribes each turn on an OpenAI-compatible server, failing over across replicas.

    Args:
        config: the daemon's settings (``stt_url``, ``stt_model``, ``stt_api_key``,
            ``stt_timeout``). Building it opens nothing: connections are made on use.

    Raises:
        ValueError: no ``stt_url`` is configured, or one is not http(s).
    """

    name = "openai"

    def __init__(self, config: Config) -> None:
        if not config.stt_url:
            raise ValueError("needs at least one --stt-url")
        self._urls = tuple(url.rstrip("/") + "/audio/transcriptions" for url in config.stt_url)
        self._origins = tuple(Origin.parse(url) for url in self._urls)
        self._model = config.stt_model
        self._timeout = config.stt_timeout
        self._turn = itertools.count()
        self._pool: Pool | None = None
        headers = [
            b"Accept: text/event-stream, application/json",
            b"Accept-Encoding: identity",
            b"User-Agent: realtime-daemon/" + __version__.encode(),
        ]
        if config.stt_api_key:
            headers.append(b"Authorization: Bearer " + config.stt_api_key.encode())
        # Each replica's request head, up to the body's boundary.
        self._heads = tuple(
            b"POST %b HTTP/1.1\r\nHost: %b\r\n%b\r\n"
            b"Content-Type: multipart/form-data; boundary="
            % (o.path.encode(), o.host_header.encode("idna"), b"\r\n".join(headers))
            for o in self._origins
        )

    def __repr__(self) -> str:
        return f"OpenAITranscriber(replicas={len(self._urls)})"  # no key, no URL

    def _connections(self) -> Pool:
        # Made on first use, inside the running loop.
        if self._pool is None:
            self._pool = Pool(
                MAX_CONNECTIONS, connect_timeout=self._timeout, watchdog=Watchdog(self._timeout)
            )
        return self._pool

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._pool is not None:
            self._pool.watchdog.close()
            self._pool.close()
            self._pool = None

    async def transcribe(
        self, request: TranscriptionRequest, delta: Callable[[str], None]
    ) -> Transcript:
        """The transcript of ``request``, from the first replica that gives one.

        Raises:
            TranscriptionFailed: every replica failed (the last failure's code),
                one refused the request, or not within ``stt_timeout``.
        """
        boundary = secrets.token_hex(16).encode()
        body = form(request, self._model or request.model or DEFAULT_MODEL, boundary)
        tail = b"%b\r\nContent-Length: %d\r\n\r\n%b" % (boundary, len(body), body)
        start = next(self._turn) % len(self._urls)
        order = [*range(start, len(self._urls)), *range(start)]
        errors: list[str] = []
        try:
            async with asyncio.timeout(self._timeout):
                for replica in order:
                    try:
                        text = await self._attempt(replica, self._heads[replica] + tail, delta)
                    except AttemptFailed as exc:
                        errors.append(exc.message)
                        logger.warning(
                            "stt_failed", url=self._urls[replica], error=exc.message, code=exc.code
                        )
                        if exc.retry and replica != order[-1]:
                            continue
                        raise TranscriptionFailed(exc.code, "; ".join(errors)) from None
                    return Transcript(text, request.seconds)
        except TimeoutError:
            logger.warning("stt_failed", error="timed out", code="timeout")
            what = f"no transcript within {self._timeout:g} s"
            raise TranscriptionFailed("timeout", "; ".join([*errors, what])) from None
        raise AssertionError("unreachable: the last replica's failure is raised")

    async def _attempt(self, replica: int, data: bytes, delta: Callable[[str], None]) -> str:
        """One replica's transcript (a kept-alive connection found closed is tried
        once more, on a new one).

        Raises:
            AttemptFailed: this replica failed.
        """
        fresh = False
        while True:
            answer = TranscriptAnswer(f"stt replica {replica}", delta)
            try:
                try:
                    pool = self._connections()
                    origin = self._origins[replica]
                    answer.connection = await pool.send(origin, data, answer, fresh=fresh)
                except OSError as exc:
                    what = f"connection failed: {_failure(exc)}"
                    raise answer.failure("upstream_unavailable", what) from None
                return await answer.result()
            except StaleConnection:
                fresh = True
            finally:
                answer.close()


def _failure(exc: OSError) -> str:
    """A connection failure in words that name no host."""
    errno = exc.errno or 0
    reason = os.strerror(errno) if errno > 0 else None
    return f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__
