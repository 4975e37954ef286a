"""The example engine in examples/: it loads like any engine and keeps the contract."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from realtime_daemon.config import Config
from realtime_daemon.engines.load import load_engine

from .conftest import PATH, StartServer, content, receive_answer, request

ROOT = Path(__file__).parent.parent


@pytest.fixture
def shout(monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    return load_engine("shout:Shout")(Config())


async def test_example_engine_shouts_word_by_word(serve_engine: StartServer, shout: object) -> None:
    """examples/shout.py answers in capitals, one word a chunk, role first, then stop."""
    client = await serve_engine(shout)
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("make some noise"))
        answer = await receive_answer(ws)
        await ws.send_json(request("again"))
        again = await receive_answer(ws)
    assert content(answer) == "MAKE SOME NOISE"
    assert len(answer) == 4
    assert answer[0]["data"]["choices"][0]["delta"]["role"] == "assistant"
    assert answer[-1]["data"]["choices"][0]["finish_reason"] == "stop"
    assert again[0]["data"]["id"].endswith("-2")
    assert [e["id"] for e in answer + again] == [str(n) for n in range(1, 7)]


def test_readme_shows_the_example_engine_as_it_is() -> None:
    """The README's custom-engine listing is examples/shout.py, to the letter."""
    readme = (ROOT / "README.md").read_text()
    listing = re.search(r"```python\n# examples/shout\.py\n(.*?)```", readme, re.S)
    assert listing, "README has no examples/shout.py listing"
    assert listing.group(1) == (ROOT / "examples" / "shout.py").read_text()
