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
import functools
import secrets
from collections.abc import Callable

import structlog

from realtime_daemon.audio.speech import Transcript, TranscriptionFailed, TranscriptionRequest
from realtime_daemon.audio.wav import wav_bytes
from realtime_daemon.config import Config
from realtime_daemon.engines.speech.answer import AttemptFailed, TranscriptAnswer
from realtime_daemon.engines.speech.replicas import Replicas

__all__ = ["DEFAULT_MODEL", "OpenAITranscriber"]

logger = structlog.get_logger("realtime_daemon")

DEFAULT_MODEL = "whisper-1"
"""The model asked for when neither ``--stt-model`` nor the session names one."""


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
        self._model = config.stt_model
        self._timeout = config.stt_timeout
        # Each replica's request head, up to the body's boundary.
        self._replicas = Replicas(
            config.stt_url,
            "/audio/transcriptions",
            [b"Accept: text/event-stream, application/json"],
            config.stt_api_key,
            b"Content-Type: multipart/form-data; boundary=",
            self._timeout,
        )

    def __repr__(self) -> str:
        return f"OpenAITranscriber(replicas={len(self._replicas)})"  # no key, no URL

    async def aclose(self) -> None:
        """Close the connection pool."""
        self._replicas.close()

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
        replicas = self._replicas
        order = replicas.order()
        errors: list[str] = []
        try:
            async with asyncio.timeout(self._timeout):
                for replica in order:
                    try:
                        text = await replicas.attempt(
                            replica,
                            replicas.heads[replica] + tail,
                            functools.partial(TranscriptAnswer, f"stt replica {replica}", delta),
                        )
                    except AttemptFailed as exc:
                        errors.append(exc.message)
                        logger.warning(
                            "stt_failed",
                            url=replicas.urls[replica],
                            error=exc.message,
                            code=exc.code,
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
