"""The Realtime API's three audio formats, and their codecs to and from PCM16.

PCM16 (16-bit signed little-endian mono at 24 kHz) is what the daemon works
in; G.711 μ-law and A-law (one byte a sample at 8 kHz) are decoded to PCM16
at 8 kHz and encoded back by lookup tables built once at import, from the
G.711 formulas (``audioop``, which had them, is gone in Python 3.13): 256
entries to decode, 65536 (one per PCM16 value) to encode, each applied with
one numpy ``take``, so a chunk costs one pass over its bytes.

A format is parsed from either shape of the wire, GA (``{"type":
"audio/pcm", "rate": 24000}``) or beta (``"pcm16"``), and shown back in both.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from realtime_daemon.audio.errors import AudioError

__all__ = [
    "FORMATS",
    "PCM16",
    "PCMA",
    "PCMU",
    "Format",
    "decode",
    "encode",
    "parse_beta",
    "parse_ga",
]


@dataclasses.dataclass(frozen=True, slots=True)
class Format:
    """An audio format of the Realtime API.

    Attributes:
        ga_type: its GA ``type`` (``audio/pcm``, ``audio/pcmu``, ``audio/pcma``).
        beta: its beta name (``pcm16``, ``g711_ulaw``, ``g711_alaw``).
        rate: samples a second.
        sample_bytes: bytes a sample takes on the wire.
    """

    ga_type: str
    beta: str
    rate: int
    sample_bytes: int

    def ga(self) -> dict[str, object]:
        """The format as a GA session shows it (the rate only for PCM, as OpenAI's)."""
        if self.sample_bytes == 2:
            return {"type": self.ga_type, "rate": self.rate}
        return {"type": self.ga_type}


PCM16 = Format("audio/pcm", "pcm16", 24000, 2)
PCMU = Format("audio/pcmu", "g711_ulaw", 8000, 1)
PCMA = Format("audio/pcma", "g711_alaw", 8000, 1)
FORMATS = (PCM16, PCMU, PCMA)
"""Every format, the default (PCM16) first."""

_BY_TYPE = {f.ga_type: f for f in FORMATS}
_BY_BETA = {f.beta: f for f in FORMATS}


def parse_ga(value: object, param: str = "format") -> Format:
    """The format a GA format object names.

    Both fields are optional, as in OpenAI's types: no ``type`` is PCM (the
    default format), and ``rate``, if given, must be the format's own (24000
    for PCM, 8000 for G.711). Other fields are ignored.

    Args:
        value: the object, as decoded from JSON.
        param: its path in the client's event, for the error's ``param``.

    Raises:
        AudioError: ``invalid_type`` (not an object, a field of the wrong type) or
            ``invalid_value`` (an unknown type, another rate).
    """
    if not isinstance(value, Mapping):
        raise AudioError("invalid_type", f"{param} must be an object", param)
    kind = value.get("type", PCM16.ga_type)
    if not isinstance(kind, str):
        raise AudioError("invalid_type", f"{param}.type must be a string", f"{param}.type")
    fmt = _BY_TYPE.get(kind)
    if fmt is None:
        names = ", ".join(repr(f.ga_type) for f in FORMATS)
        raise AudioError("invalid_value", f"{param}.type must be one of {names}", f"{param}.type")
    rate = value.get("rate")
    if rate is not None and (isinstance(rate, bool) or rate != fmt.rate):
        raise AudioError(
            "invalid_value",
            f"{param}.rate must be {fmt.rate} for {fmt.ga_type}",
            f"{param}.rate",
        )
    return fmt


def parse_beta(value: object, param: str = "input_audio_format") -> Format:
    """The format a beta format name names.

    Raises:
        AudioError: ``invalid_type`` (not a string) or ``invalid_value`` (an unknown name).
    """
    if not isinstance(value, str):
        raise AudioError("invalid_type", f"{param} must be a string", param)
    fmt = _BY_BETA.get(value)
    if fmt is None:
        names = ", ".join(repr(f.beta) for f in FORMATS)
        raise AudioError("invalid_value", f"{param} must be one of {names}", param)
    return fmt


def _ulaw_decode_table() -> npt.NDArray[np.int16]:
    # G.711 μ-law: the byte is sent inverted; 3 bits of segment, 4 of mantissa;
    # magnitude ((mantissa << 3) + 0x84) << segment, less the bias 0x84.
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent, mantissa = (u >> 4) & 7, u & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(u & 0x80, -magnitude, magnitude).astype("<i2")


def _alaw_decode_table() -> npt.NDArray[np.int16]:
    # G.711 A-law: even bits inverted (0x55); sign bit set means positive;
    # segment 0 is linear, the others double the step each.
    a = np.arange(256, dtype=np.int32) ^ 0x55
    exponent, mantissa = (a >> 4) & 7, a & 0x0F
    magnitude = np.where(
        exponent == 0,
        (mantissa << 4) + 8,
        ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0),
    )
    return np.where(a & 0x80, magnitude, -magnitude).astype("<i2")


def _segment(magnitude: npt.NDArray[np.int32], ends: tuple[int, ...]) -> npt.NDArray[np.int32]:
    """Which segment each magnitude falls in, given the segments' upper ends."""
    return np.searchsorted(np.array(ends), magnitude, side="left").astype(np.int32)


def _ulaw_encode_table() -> npt.NDArray[np.uint8]:
    # Indexed by the PCM16 value's two bytes read as unsigned (value & 0xFFFF).
    pcm = np.arange(65536, dtype=np.int32).astype(np.uint16).view(np.int16).astype(np.int32)
    sign = np.where(pcm < 0, 0x80, 0)
    magnitude = np.minimum(np.abs(pcm), 32635) + 0x84  # clip, then bias
    exponent = _segment(magnitude, tuple((0x100 << s) - 1 for s in range(8)))
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    code: npt.NDArray[np.int32] = ~(sign | (exponent << 4) | mantissa) & 0xFF
    return code.astype(np.uint8)


def _alaw_encode_table() -> npt.NDArray[np.uint8]:
    pcm = np.arange(65536, dtype=np.int32).astype(np.uint16).view(np.int16).astype(np.int32)
    value = pcm >> 3  # A-law quantises 13 bits
    mask = np.where(value >= 0, 0xD5, 0x55)
    magnitude = np.where(value >= 0, value, -value - 1)
    segment = _segment(magnitude, tuple((0x20 << s) - 1 for s in range(8)))
    shift = np.where(segment < 2, 1, segment)
    code = (np.minimum(segment, 7) << 4) | ((magnitude >> shift) & 0x0F)
    code = np.where(segment >= 8, 0x7F, code)  # past the last segment: the largest code
    return ((code ^ mask) & 0xFF).astype(np.uint8)


_Table = TypeVar("_Table", bound=npt.NDArray[np.generic])


def _readonly(table: _Table) -> _Table:
    table.flags.writeable = False  # shared by every session: nothing may write to it
    return table


_DECODE = {PCMU: _readonly(_ulaw_decode_table()), PCMA: _readonly(_alaw_decode_table())}
_ENCODE = {PCMU: _readonly(_ulaw_encode_table()), PCMA: _readonly(_alaw_encode_table())}


def _check_pcm16(pcm: bytes) -> None:
    if len(pcm) % 2:
        raise AudioError(
            "invalid_value",
            f"PCM16 audio must be a whole number of 16-bit samples: {len(pcm)} bytes is odd",
            "audio",
        )


def decode(fmt: Format, data: bytes) -> bytes:
    """``data`` in ``fmt`` as PCM16 (little-endian, mono) at the format's rate.

    Raises:
        AudioError: ``invalid_value`` (param ``audio``): PCM16 of an odd number of bytes.
    """
    table = _DECODE.get(fmt)
    if table is None:
        _check_pcm16(data)
        return bytes(data)
    return table.take(np.frombuffer(data, dtype=np.uint8)).tobytes()  # take: faster than []


def encode(fmt: Format, pcm16: bytes) -> bytes:
    """PCM16 (little-endian, mono, at the format's rate) in ``fmt``.

    Raises:
        AudioError: ``invalid_value`` (param ``audio``): an odd number of bytes.
    """
    _check_pcm16(pcm16)
    table = _ENCODE.get(fmt)
    if table is None:
        return bytes(pcm16)
    # A sample's two bytes read as one unsigned number are its index in the table.
    index: npt.NDArray[np.uint16] = np.frombuffer(pcm16, dtype="<u2")
    return table.take(index).tobytes()
