"""A speech-to-text plugin: "transcribes" each turn as its length (--stt clock_stt:ClockSTT)."""

from collections.abc import Callable

from realtime_daemon.engines.api import (
    Config,
    Transcript,
    TranscriptionFailed,
    TranscriptionRequest,
)


class ClockSTT:
    name = "clock"

    def __init__(self, config: Config) -> None:
        self.timeout = config.stt_timeout  # --stt-* settings are the plugin's to read

    async def transcribe(
        self, request: TranscriptionRequest, delta: Callable[[str], None]
    ) -> Transcript:
        if request.seconds < 0.1:
            raise TranscriptionFailed("invalid_answer", "under 0.1 s of audio")
        words = [f"{request.seconds:.1f}", "seconds", "of", "audio"]
        for i, word in enumerate(words):
            delta(word if i == 0 else " " + word)  # each piece as it is known
        return Transcript(" ".join(words), request.seconds)

    async def aclose(self) -> None:
        pass
