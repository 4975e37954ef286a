"""``realtime-daemon chat --audio FILE``: a WAV file sent as one spoken turn.

The file (16-bit PCM, any rate, mono or stereo) is resampled to the Realtime
API's 24 kHz PCM16 and sent over the Realtime dialect: a session with manual
commits (``turn_detection: null``) and transcription on, the audio in
100 ms appends, a commit and a ``response.create``. The transcript goes to
stderr (``you said: ...``), the answer's text (or, spoken, its transcript)
to stdout as it streams; a spoken answer's audio is kept for ``--save-audio``
and ``--play``.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
import urllib.parse
import wave
from pathlib import Path
from typing import Any

import aiohttp
import click
import numpy as np

from realtime_daemon.audio.resample import resample

__all__ = ["answer_audio", "play", "read_wav", "realtime_url", "spoken_turn", "write_wav"]

RATE = 24000
_APPEND_BYTES = RATE // 10 * 2  # 100 ms of PCM16


class WavError(Exception):
    """A file that is not a 16-bit PCM WAV file."""


def read_wav(path: Path) -> bytes:
    """The file's audio as PCM16 mono at 24 kHz.

    Raises:
        WavError: not a readable 16-bit PCM WAV file.
    """
    try:
        with wave.open(str(path), "rb") as wav:
            width, channels, rate = wav.getsampwidth(), wav.getnchannels(), wav.getframerate()
            frames = wav.readframes(wav.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        raise WavError(f"{path}: not a readable WAV file ({exc})") from None
    if width != 2:
        raise WavError(f"{path}: {8 * width}-bit samples; 16-bit PCM is needed")
    if channels > 1:
        samples = np.frombuffer(frames, dtype="<i2").reshape(-1, channels)
        frames = samples.mean(axis=1).astype("<i2").tobytes()
    return resample(frames, rate, RATE) if rate != RATE else frames


def write_wav(path: Path, pcm: bytes) -> None:
    """Write PCM16 mono at 24 kHz to ``path`` as a WAV file."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(pcm)


PLAYERS = (
    ("paplay", ["--raw", "--rate=24000", "--channels=1", "--format=s16le"]),
    ("aplay", ["-q", "-t", "raw", "-r", "24000", "-c", "1", "-f", "S16_LE"]),
    ("ffplay", ["-nodisp", "-autoexit", "-loglevel", "quiet", "-f", "s16le", "-ar", "24000",
                "-ch_layout", "mono", "-i", "-"]),
)  # fmt: skip
"""Players tried in order for ``--play``, each reading raw PCM16 at 24 kHz on stdin."""


def play(pcm: bytes) -> str | None:
    """Play PCM16 mono at 24 kHz through the first player found; its name, or None
    when there is none."""
    for name, args in PLAYERS:
        found = shutil.which(name)
        if found is not None:
            subprocess.run([found, *args], input=pcm, check=False)
            return name
    return None


def realtime_url(url: str, model: str) -> str:
    """The daemon's URL with ``?model=``, which selects the Realtime dialect."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query)
    query = [(k, v) for k, v in query if k != "model"] + [("model", model)]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


async def spoken_turn(
    ws: aiohttp.ClientWebSocketResponse, pcm: bytes, heard: bytearray | None = None
) -> str:
    """Send one spoken turn on an open Realtime WebSocket and print what comes back.

    Args:
        ws: the connection.
        pcm: the turn, PCM16 mono at 24 kHz.
        heard: where a spoken answer's audio goes (PCM16 mono at 24 kHz).

    Returns:
        the answer's text (its transcript, when it was spoken).

    Raises:
        RuntimeError: the daemon sent an ``error`` event, or the response did not
            complete (its message says why).
    """
    update = {
        "type": "realtime",
        "audio": {"input": {"turn_detection": None, "transcription": {"model": None}}},
    }
    await ws.send_json({"type": "session.update", "session": update})
    for start in range(0, len(pcm), _APPEND_BYTES):
        chunk = base64.b64encode(pcm[start : start + _APPEND_BYTES]).decode()
        await ws.send_json({"type": "input_audio_buffer.append", "audio": chunk})
    await ws.send_json({"type": "input_audio_buffer.commit"})
    await ws.send_json({"type": "response.create"})
    text: list[str] = []
    while True:
        message = await ws.receive()
        if message.type != aiohttp.WSMsgType.TEXT:
            raise RuntimeError(f"the connection ended ({ws.close_code} {message.extra or ''})")
        event: dict[str, Any] = message.json()
        kind = event.get("type")
        if kind == "error":
            raise RuntimeError(f"{event['error'].get('code')}: {event['error'].get('message')}")
        if kind == "conversation.item.input_audio_transcription.completed":
            print(f"you said: {event['transcript']}", file=sys.stderr, flush=True)
        elif kind == "conversation.item.input_audio_transcription.failed":
            error = event.get("error") or {}
            print(f"transcription failed: {error.get('code')}", file=sys.stderr, flush=True)
        elif kind == "response.output_audio.delta" and heard is not None:
            heard += base64.b64decode(event["delta"])
        elif kind in ("response.output_text.delta", "response.output_audio_transcript.delta"):
            text.append(event["delta"])
            sys.stdout.write(event["delta"])
            sys.stdout.flush()
        elif kind == "response.done":
            response = event["response"]
            if response["status"] != "completed":
                details = response.get("status_details") or {}
                error = details.get("error") or {}
                raise RuntimeError(f"response {response['status']}: {error.get('message', '')}")
            return "".join(text)


def answer_audio(pcm: bytes, save: Path | None, to_play: bool) -> None:
    """Keep or play a spoken answer's audio, saying so on stderr."""
    if (save is not None or to_play) and not pcm:
        click.echo("the answer was not spoken (the daemon needs --tts)", err=True)
        return
    if save is not None:
        write_wav(save, pcm)
        click.echo(f"answer audio: {save} ({len(pcm) / 48000:.1f} s)", err=True)
    if to_play and play(pcm) is None:
        click.echo("--play: no player found (paplay, aplay or ffplay)", err=True)
