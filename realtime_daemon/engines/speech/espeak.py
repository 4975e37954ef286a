"""The local text-to-speech engines: ``espeak`` (the ``espeak-ng`` program) and ``flite``.

Both are Debian packages needing no download (``apt-get install espeak-ng``,
``apt-get install flite``); the daemon runs the program once per piece of
text, as a process of its own (no GIL shared, nothing to load: espeak-ng
speaks a sentence in a few milliseconds). The program writes a WAV stream to
its stdout; it is read as it comes (:class:`~realtime_daemon.audio.wav.WavReader`),
resampled from the program's rate (espeak-ng 22050 Hz, flite 16 kHz) to
24 kHz (:class:`~realtime_daemon.audio.resample.Resampler`) and handed on.

- A synthesis cancelled kills its process at once (SIGKILL).
- ``--tts-timeout`` bounds each wait for the program's output (``timeout``).
- A program that fails (an unknown voice, say) is ``engine_error``, with
  the first line it wrote to stderr.
- Voices are the program's own (``espeak-ng --voices``: ``en-us``, ``en-gb``,
  ``de``, ``en-us+f3``...; ``flite -lv``: ``slt``, ``awb``, ``rms``, ``kal``);
  a session's voice not in ``[tts.voices]`` is ``--tts-voice``.
- The speed is espeak-ng's words a minute (175 times the speed, 80 to 450),
  or flite's ``duration_stretch`` (one over the speed).
"""

from __future__ import annotations

import asyncio
import shutil
from asyncio.subprocess import DEVNULL, PIPE, Process
from collections.abc import Callable

from realtime_daemon.audio.resample import Resampler
from realtime_daemon.audio.speech import PCM_RATE, SpeechRequest, SynthesisFailed
from realtime_daemon.audio.wav import WavReader
from realtime_daemon.config import Config

__all__ = ["EspeakSynthesizer", "FliteSynthesizer", "espeak_words_per_minute"]

_READ = 64 * 1024
_STDERR = 4096  # bytes of a failed program's complaint read


def espeak_words_per_minute(speed: float) -> int:
    """espeak-ng's ``-s`` for a Realtime speed (1.0: its default, 175)."""
    return max(80, min(450, round(175 * speed)))


class _ProgramSynthesizer:
    """A synthesizer running ``program`` for each piece: the command line is the subclass's.

    Raises:
        ValueError: none of the ``programs`` is installed (the message says how to).
    """

    name = ""
    passthrough = False  # a local program knows only its own voices
    programs: tuple[str, ...] = ()
    package = ""
    default_voice = ""

    def __init__(self, config: Config) -> None:
        found = next((path for p in self.programs if (path := shutil.which(p))), None)
        if found is None:
            raise ValueError(
                f"the {self.programs[0]} program is not installed (apt-get install {self.package})"
            )
        self.program = found
        self.voice = config.tts_voice or self.default_voice
        self._timeout = config.tts_timeout

    def __repr__(self) -> str:
        return f"{type(self).__name__}(program={self.program!r})"

    def command(self, request: SpeechRequest) -> tuple[list[str], bytes | None]:
        """The program's arguments for ``request``, and its stdin (None: none)."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Nothing is held between syntheses."""

    async def synthesize(self, request: SpeechRequest, audio: Callable[[bytes], None]) -> None:
        """Speak ``request`` with the program, handing 24 kHz PCM to ``audio`` as it comes.

        Raises:
            SynthesisFailed: ``engine_error`` (the program failed, or wrote no
                PCM16 WAV), ``timeout`` (no output for ``tts_timeout``).
        """
        argv, stdin = self.command(request)
        try:
            process = await asyncio.create_subprocess_exec(
                *argv, stdin=DEVNULL if stdin is None else PIPE, stdout=PIPE, stderr=PIPE
            )
        except OSError as exc:
            raise SynthesisFailed("engine_error", f"{self.name} cannot start: {exc}") from None
        try:
            if stdin is not None:
                assert process.stdin is not None
                process.stdin.write(stdin)
                process.stdin.close()
            await self._read(process, audio)
            assert process.stderr is not None
            complaint = await process.stderr.read(_STDERR)
            if await process.wait() != 0:
                what = complaint.decode(errors="replace").strip().split("\n")[0]
                what = f": {what}" if what else ""
                raise SynthesisFailed(
                    "engine_error", f"{self.name} failed (exit {process.returncode}){what}"
                )
        finally:
            if process.returncode is None:
                process.kill()  # cancelled or failed: at once, not when it is done
                await process.wait()

    async def _read(self, process: Process, audio: Callable[[bytes], None]) -> None:
        assert process.stdout is not None
        wav = WavReader()
        resampler: Resampler | None = None
        odd = b""
        while True:
            try:
                async with asyncio.timeout(self._timeout):
                    data = await process.stdout.read(_READ)
            except TimeoutError:
                what = f"{self.name} gave no audio for {self._timeout:g} s"
                raise SynthesisFailed("timeout", what) from None
            if not data:
                break
            try:
                pcm = odd + wav.feed(data)
            except ValueError as exc:
                raise SynthesisFailed("engine_error", f"{self.name} wrote {exc}") from None
            cut = len(pcm) & ~1
            pcm, odd = pcm[:cut], pcm[cut:]
            if pcm:
                if resampler is None:
                    assert wav.rate is not None
                    resampler = Resampler(wav.rate, PCM_RATE)
                if out := resampler.process(pcm):
                    audio(out)
        if resampler is not None and (out := resampler.flush()):
            audio(out)


class EspeakSynthesizer(_ProgramSynthesizer):
    """Speaks with ``espeak-ng`` (or ``espeak``): the text on its stdin, WAV on its stdout.

    Args:
        config: the daemon's settings (``tts_voice``, ``tts_timeout``).

    Raises:
        ValueError: espeak-ng is not installed.
    """

    name = "espeak"
    programs = ("espeak-ng", "espeak")
    package = "espeak-ng"
    default_voice = "en-us"

    def command(self, request: SpeechRequest) -> tuple[list[str], bytes | None]:
        wpm = espeak_words_per_minute(request.speed)
        # -b 1: the input is UTF-8; on stdin, so that no text is read as an option.
        argv = [self.program, "--stdout", "-b", "1", "-v", request.voice, "-s", str(wpm)]
        return argv, request.text.encode()


class FliteSynthesizer(_ProgramSynthesizer):
    """Speaks with ``flite``: the text as its ``-t`` argument, WAV on its stdout.

    flite writes its WAV once the whole piece is spoken (about 0.02 s per second
    of speech here), so its first audio waits for that.

    Args:
        config: the daemon's settings (``tts_voice``, ``tts_timeout``).

    Raises:
        ValueError: flite is not installed.
    """

    name = "flite"
    programs = ("flite",)
    package = "flite"
    default_voice = "slt"

    def command(self, request: SpeechRequest) -> tuple[list[str], bytes | None]:
        stretch = f"{1 / max(0.25, min(4.0, request.speed)):.3f}"
        argv = [self.program, "-voice", request.voice, "--setf", f"duration_stretch={stretch}"]
        return [*argv, "-o", "/dev/stdout", "-t", request.text], None
