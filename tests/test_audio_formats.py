"""Audio formats: the wire's names in both shapes, and the G.711 codecs against the standard."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest

from realtime_daemon.audio.errors import AudioError
from realtime_daemon.audio.formats import (
    FORMATS,
    PCM16,
    PCMA,
    PCMU,
    Format,
    decode,
    encode,
    parse_beta,
    parse_ga,
)

# -- A reference from the G.711 formulas, one value at a time, written apart from the
# tables: segments found by walking their ends, not by bit tricks.


def _ulaw_expand(code: int) -> int:
    """μ-law byte -> linear: the byte is sent inverted; the standard's 14-bit value
    (2m + 33) * 2**s - 33 for segment s and mantissa m, times 4."""
    u = code ^ 0xFF
    segment, mantissa = (u >> 4) & 7, u & 0x0F
    magnitude = ((2 * mantissa + 33) * 2**segment - 33) * 4
    return -magnitude if u & 0x80 else magnitude


def _alaw_expand(code: int) -> int:
    """A-law byte -> linear: even bits sent inverted, sign bit 1 = positive; the
    standard's 13-bit value 2m + 1 (segment 0) or (2m + 33) * 2**(s - 1), times 8."""
    a = code ^ 0x55
    segment, mantissa = (a >> 4) & 7, a & 0x0F
    if segment == 0:
        magnitude = (2 * mantissa + 1) * 8
    else:
        magnitude = (2 * mantissa + 33) * 2 ** (segment - 1) * 8
    return magnitude if a & 0x80 else -magnitude


def _ulaw_compress(sample: int) -> int:
    """Linear -> μ-law: clip, add the bias 132, find the segment by its upper end."""
    biased = min(abs(sample), 32635) + 132
    ends = [256 * 2**s - 1 for s in range(8)]
    segment = next(i for i, end in enumerate(ends) if biased <= end)
    mantissa = (biased // 2 ** (segment + 3)) % 16
    sign = 0x80 if sample < 0 else 0
    return (sign | segment << 4 | mantissa) ^ 0xFF


def _alaw_compress(sample: int) -> int:
    """Linear -> A-law on 13 bits: find the segment by its upper end."""
    value = sample // 8
    mask = 0xD5 if value >= 0 else 0x55
    magnitude = value if value >= 0 else -value - 1
    ends = [32 * 2**s - 1 for s in range(8)]
    segment = next(i for i, end in enumerate(ends) if magnitude <= end)
    mantissa = (magnitude // 2 ** max(segment, 1)) % 16
    return (segment << 4 | mantissa) ^ mask


def _pcm(*samples: int) -> bytes:
    return struct.pack(f"<{len(samples)}h", *samples)


def _samples(pcm: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(pcm) // 2}h", pcm))


ALL_BYTES = bytes(range(256))
ALL_SAMPLES = _pcm(*range(-32768, 32768))


# -- The wire's names


def test_each_format_has_its_rate_and_sample_size() -> None:
    """PCM16 is 24 kHz at 2 bytes a sample; both G.711 laws are 8 kHz at 1 byte."""
    assert [(f.rate, f.sample_bytes) for f in FORMATS] == [(24000, 2), (8000, 1), (8000, 1)]


def test_ga_objects_parse_and_show_back() -> None:
    """Each GA object parses to its format and the format shows the same object back."""
    objects = [{"type": "audio/pcm", "rate": 24000}, {"type": "audio/pcmu"}, {"type": "audio/pcma"}]
    assert [parse_ga(o) for o in objects] == [PCM16, PCMU, PCMA]
    assert [f.ga() for f in FORMATS] == objects


def test_beta_names_parse_and_show_back() -> None:
    """Each beta name parses to its format, which shows the same name back."""
    assert [parse_beta(n) for n in ("pcm16", "g711_ulaw", "g711_alaw")] == [PCM16, PCMU, PCMA]
    assert [f.beta for f in FORMATS] == ["pcm16", "g711_ulaw", "g711_alaw"]


def test_ga_fields_are_optional() -> None:
    """No type is PCM, the default; no rate is the format's own; a G.711 rate of 8000 is it."""
    assert parse_ga({}) == PCM16
    assert parse_ga({"type": "audio/pcm"}) == PCM16
    assert parse_ga({"type": "audio/pcmu", "rate": 8000}) == PCMU


@pytest.mark.parametrize(
    ("value", "code", "param"),
    [
        ("audio/pcm", "invalid_type", "session.audio.input.format"),
        ({"type": 1}, "invalid_type", "session.audio.input.format.type"),
        ({"type": "audio/opus"}, "invalid_value", "session.audio.input.format.type"),
        ({"type": "audio/pcm", "rate": 16000}, "invalid_value", "session.audio.input.format.rate"),
        ({"type": "audio/pcm", "rate": True}, "invalid_value", "session.audio.input.format.rate"),
        ({"type": "audio/pcma", "rate": 24000}, "invalid_value", "session.audio.input.format.rate"),
    ],
)
def test_bad_ga_formats_name_their_field(value: object, code: str, param: str) -> None:
    """A bad GA format is refused with the code and the path of the field at fault."""
    with pytest.raises(AudioError) as caught:
        parse_ga(value, "session.audio.input.format")
    assert (caught.value.code, caught.value.param) == (code, param)


@pytest.mark.parametrize(("value", "code"), [(None, "invalid_type"), ("g711", "invalid_value")])
def test_bad_beta_formats_name_their_field(value: object, code: str) -> None:
    """A bad beta format name is refused with its code and param."""
    with pytest.raises(AudioError) as caught:
        parse_beta(value)
    assert (caught.value.code, caught.value.param) == (code, "input_audio_format")


# -- The codecs


def test_ulaw_decodes_as_the_g711_formula() -> None:
    """All 256 μ-law bytes decode as the reference expansion gives."""
    assert _samples(decode(PCMU, ALL_BYTES)) == [_ulaw_expand(c) for c in range(256)]


def test_alaw_decodes_as_the_g711_formula() -> None:
    """All 256 A-law bytes decode as the reference expansion gives."""
    assert _samples(decode(PCMA, ALL_BYTES)) == [_alaw_expand(c) for c in range(256)]


def test_g711_known_values() -> None:
    """The table ends and zeros of G.711 (16-bit scale: μ-law x4, A-law x8 of the standard's)."""
    ulaw = _samples(decode(PCMU, bytes([0x80, 0x00, 0xFF, 0x7F, 0xFE, 0xEF])))
    assert ulaw == [4 * 8031, -4 * 8031, 0, 0, 4 * 2, 4 * 33]
    alaw = _samples(decode(PCMA, bytes([0xAA, 0x2A, 0xD5, 0x55, 0xFA])))
    assert alaw == [8 * 4032, -8 * 4032, 8 * 1, -8 * 1, 8 * 126]


@pytest.mark.parametrize(("fmt", "reference"), [(PCMU, _ulaw_compress), (PCMA, _alaw_compress)])
def test_g711_encodes_as_the_formula(fmt: Format, reference: Callable[[int], int]) -> None:
    """Every PCM16 value encodes as the reference compression gives."""
    assert list(encode(fmt, ALL_SAMPLES)) == [reference(s) for s in range(-32768, 32768)]


@pytest.mark.parametrize("fmt", [PCMU, PCMA])
def test_g711_encoding_keeps_each_sample_within_half_a_step(fmt: Format) -> None:
    """Every PCM16 value decodes back within half a step of its level's segment (the
    step is the gap to the next level outwards, or inwards at the largest level):
    the quantiser's decision intervals, clipped at the law's largest level."""
    levels = sorted(set(_samples(decode(fmt, ALL_BYTES))))
    back = _samples(decode(fmt, encode(fmt, ALL_SAMPLES)))
    index = {level: i for i, level in enumerate(levels)}
    for sample, level in zip(range(-32768, 32768), back, strict=True):
        i = index[level]
        outward = i + 1 if level >= 0 else i - 1
        if not 0 <= outward < len(levels):
            outward = i - 1 if level >= 0 else i + 1
        step = abs(levels[outward] - level)
        clipped = min(max(sample, levels[0]), levels[-1])
        assert abs(clipped - level) <= step / 2, (sample, level)


def test_g711_round_trips_every_code() -> None:
    """Encoding a decoded byte gives the byte back (μ-law's negative zero becomes zero)."""
    assert encode(PCMA, decode(PCMA, ALL_BYTES)) == ALL_BYTES
    expected = ALL_BYTES.replace(b"\x7f", b"\xff")
    assert encode(PCMU, decode(PCMU, ALL_BYTES)) == expected


def test_pcm16_passes_through() -> None:
    """PCM16 decodes and encodes to itself."""
    pcm = _pcm(-32768, -1, 0, 1, 32767)
    assert decode(PCM16, pcm) == pcm == encode(PCM16, pcm)


@pytest.mark.parametrize(
    "call", [lambda: decode(PCM16, b"\x00\x01\x02"), lambda: encode(PCMU, b"\x00")]
)
def test_an_odd_number_of_pcm16_bytes_is_refused(call: Callable[[], bytes]) -> None:
    """PCM16 of an odd length is invalid_value on param audio."""
    with pytest.raises(AudioError) as caught:
        call()
    assert (caught.value.code, caught.value.param) == ("invalid_value", "audio")


def test_g711_has_no_length_rule() -> None:
    """Any number of G.711 bytes decodes, one sample each, to twice as many PCM16 bytes."""
    assert len(decode(PCMU, b"\xff" * 3)) == 6
    assert decode(PCMA, b"") == b""
