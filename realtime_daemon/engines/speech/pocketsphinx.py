"""The ``pocketsphinx`` speech-to-text engine: local, English, no download.

The ``pocketsphinx`` wheel ships CMU's US English acoustic model, language
model and dictionary; installed with the speech extra
(``pip install 'realtime-daemon[speech]'``), it needs nothing else. The
turn's audio is resampled to 16 kHz (:mod:`realtime_daemon.audio.resample`)
and decoded whole.

Decoding runs in worker processes, not threads: pocketsphinx holds the GIL
while it decodes (about 0.4 s per second of speech here), which in a thread
would stall the event loop as long. Each worker loads the model once
(about half a second), when the first transcriptions need it; at most
:data:`WORKERS` decode at once, the others wait in order. The session's
``model``, ``language`` and ``prompt`` are ignored: the model is English.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import importlib.util
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from realtime_daemon.audio.resample import resample
from realtime_daemon.audio.speech import Transcript, TranscriptionFailed, TranscriptionRequest
from realtime_daemon.config import Config

__all__ = ["RATE", "WORKERS", "PocketsphinxTranscriber", "decode"]

RATE = 16000
"""The sample rate of the bundled acoustic model."""
WORKERS = min(2, os.cpu_count() or 1)
"""Worker processes, each decoding one turn at a time."""
INSTALL = "pip install 'realtime-daemon[speech]'"

_worker: dict[str, Any] = {}  # in a worker process: its one decoder, made once


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _start_worker() -> None:
    """A worker process's start: die with the daemon, then load the model (once)."""
    if sys.platform.startswith("linux"):
        # A daemon killed outright (SIGKILL, the OOM killer) cannot stop its pool:
        # the kernel ends the worker instead, so none outlives it holding its pipes.
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    _load()


def _load() -> None:
    """Load the model into this process (once)."""
    from pocketsphinx import Decoder

    _worker["decoder"] = Decoder(samprate=RATE, loglevel="FATAL")


def decode(pcm: bytes, rate: int) -> str:
    """The words pocketsphinx hears in ``pcm`` (PCM16 mono at ``rate``); in a worker."""
    if rate != RATE:
        pcm = resample(pcm, rate, RATE)
    if "decoder" not in _worker:
        _load()
    decoder = _worker["decoder"]
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    hypothesis = decoder.hyp()
    return str(hypothesis.hypstr) if hypothesis is not None else ""


class PocketsphinxTranscriber:
    """Transcribes each turn locally with pocketsphinx, in worker processes.

    Args:
        config: the daemon's settings (``stt_timeout``). Building it starts
            nothing: the workers start with the first transcription.

    Raises:
        ValueError: pocketsphinx is not installed (the message says how to).
    """

    name = "pocketsphinx"

    def __init__(self, config: Config) -> None:
        if importlib.util.find_spec("pocketsphinx") is None:
            raise ValueError(f"pocketsphinx is not installed: {INSTALL}")
        self._timeout = config.stt_timeout
        self._executor: concurrent.futures.ProcessPoolExecutor | None = None

    def _workers(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._executor is None:
            # Spawned, not forked: the daemon's process has threads and a loop.
            self._executor = concurrent.futures.ProcessPoolExecutor(
                WORKERS, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker
            )
        return self._executor

    async def transcribe(
        self, request: TranscriptionRequest, delta: Callable[[str], None]
    ) -> Transcript:
        """The words heard in ``request.audio`` (``delta`` is never called: nothing streams).

        Raises:
            TranscriptionFailed: ``timeout`` past ``stt_timeout`` (the worker
                finishes that turn unheeded), ``engine_error`` if a worker died.
        """
        try:
            async with asyncio.timeout(self._timeout):
                future = self._workers().submit(decode, request.audio, request.rate)
                text = await asyncio.wrap_future(future)
        except TimeoutError:
            what = f"pocketsphinx gave no transcript within {self._timeout:g} s"
            raise TranscriptionFailed("timeout", what) from None
        except BrokenProcessPool:
            broken, self._executor = self._executor, None  # the next turn starts new ones
            if broken is not None:
                broken.shutdown(wait=False, cancel_futures=True)
            raise TranscriptionFailed("engine_error", "a pocketsphinx worker died") from None
        return Transcript(text, request.seconds)

    async def aclose(self) -> None:
        """Stop the workers (a turn being decoded is finished first)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)
