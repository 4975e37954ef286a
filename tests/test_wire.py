"""The wire contract of /v1/realtime with the echo engine."""

from __future__ import annotations

import json
from typing import Any

from .conftest import PATH, Client, content, receive_answer, request


async def test_answer_streams_one_chunk_per_code_point(client: Client) -> None:
    """Each code point of the prompt is one chunk, then one stop chunk."""
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("abc"))
        answer = await receive_answer(ws)
    deltas = [e["data"]["choices"][0]["delta"] for e in answer]
    assert [d.get("content") for d in deltas] == ["a", "b", "c", None]
    assert [e["data"]["choices"][0]["finish_reason"] for e in answer] == [None, None, None, "stop"]


async def test_chunk_follows_openai_schema(client: Client) -> None:
    """A chunk has id, object, created, model and one choice with index, delta, finish_reason."""
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("x", model="my-model"))
        first, last = await receive_answer(ws)
    assert set(first) == {"data", "id"}
    chunk = first["data"]
    assert chunk["object"] == "chat.completion.chunk"
    assert chunk["model"] == "my-model"
    assert isinstance(chunk["created"], int)
    assert chunk["choices"] == [
        {"index": 0, "delta": {"role": "assistant", "content": "x"}, "finish_reason": None}
    ]
    assert last["data"]["choices"] == [{"index": 0, "delta": {}, "finish_reason": "stop"}]
    assert "usage" not in last["data"]


async def test_only_first_chunk_of_each_answer_carries_role(client: Client) -> None:
    """delta.role is "assistant" on the first chunk of every answer and absent after."""
    async with client.ws_connect(PATH) as ws:
        for _ in range(2):
            await ws.send_json(request("hi"))
            answer = await receive_answer(ws)
            roles = [e["data"]["choices"][0]["delta"].get("role") for e in answer]
            assert roles == ["assistant", None, None]


async def test_envelope_ids_count_across_the_connection(client: Client) -> None:
    """Envelope ids are "1", "2", ... across all answers of one connection."""
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("ab"))
        await ws.send_json(request("cde"))
        answers = await receive_answer(ws) + await receive_answer(ws)
    assert [e["id"] for e in answers] == [str(n) for n in range(1, 8)]


async def test_chunk_ids_name_session_and_request(client: Client) -> None:
    """Chunks of the k-th request share id chatcmpl-<session>-<k>; sessions differ."""
    sessions = set()
    for _ in range(2):
        async with client.ws_connect(PATH) as ws:
            await ws.send_json(request("ab"))
            await ws.send_json(request("c"))
            first = await receive_answer(ws)
            second = await receive_answer(ws)
        ids_1 = {e["data"]["id"] for e in first}
        ids_2 = {e["data"]["id"] for e in second}
        assert len(ids_1) == 1 and len(ids_2) == 1
        (id_1,), (id_2,) = ids_1, ids_2
        prefix, session, k = id_1.split("-")
        assert (prefix, k) == ("chatcmpl", "1")
        assert id_2 == f"chatcmpl-{session}-2"
        sessions.add(session)
    assert len(sessions) == 2


async def test_unicode_is_split_by_code_point(client: Client) -> None:
    """Multi-byte, astral and combining characters each come as one chunk."""
    text = "é中🙂e\u0301ß"
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request(text))
        answer = await receive_answer(ws)
    assert [e["data"]["choices"][0]["delta"].get("content") for e in answer[:-1]] == list(text)
    assert content(answer) == text


async def test_pipelined_requests_are_answered_in_order(client: Client) -> None:
    """Requests sent back to back are answered one after the other, in order."""
    prompts = [f"prompt {n}" for n in range(20)]
    async with client.ws_connect(PATH) as ws:
        for prompt in prompts:
            await ws.send_json(request(prompt))
        answers = [content(await receive_answer(ws)) for _ in prompts]
    assert answers == prompts


async def test_text_parts_of_list_content_are_joined(client: Client) -> None:
    """A list content echoes its text parts joined, skipping other parts."""
    parts: list[dict[str, Any]] = [
        {"type": "text", "text": "one "},
        {"type": "image_url", "image_url": {"url": "http://example.invalid/x.png"}},
        {"type": "text", "text": "two"},
    ]
    body = {"model": "m", "messages": [{"role": "user", "content": parts}]}
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(body)
        assert content(await receive_answer(ws)) == "one two"


async def test_last_message_not_from_user_echoes_placeholder(client: Client) -> None:
    """When the last message is not a user message, the answer is the placeholder."""
    body = {
        "model": "m",
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
        ],
    }
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("first"))
        await ws.send_json(body)
        await receive_answer(ws)
        assert content(await receive_answer(ws)) == "<chunk 2: non-text content>"


async def test_user_message_without_text_echoes_placeholder(client: Client) -> None:
    """A last user message with no text part echoes the placeholder."""
    parts = [{"type": "image_url", "image_url": {"url": "http://example.invalid/x.png"}}]
    body = {"model": "m", "messages": [{"role": "user", "content": parts}]}
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(body)
        assert content(await receive_answer(ws)) == "<chunk 1: non-text content>"


async def test_usage_on_final_chunk_when_asked(client: Client) -> None:
    """include_usage puts usage on the stop chunk: echoed code points as completion tokens."""
    body = request("héllo", stream_options={"include_usage": True})
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(body)
        answer = await receive_answer(ws)
    assert all("usage" not in e["data"] for e in answer[:-1])
    assert answer[-1]["data"]["usage"] == {
        "prompt_tokens": 5,
        "completion_tokens": 5,
        "total_tokens": 10,
    }


async def test_unknown_and_openai_fields_are_accepted(client: Client) -> None:
    """Fields the daemon does not declare, OpenAI's or anybody's, do not refuse a request."""
    body = request(
        "ok",
        temperature=0.2,
        max_tokens=5,
        stop=["\n"],
        tools=[{"type": "function", "function": {"name": "f"}}],
        vendor_extension={"anything": [1, 2, 3]},
    )
    async with client.ws_connect(PATH) as ws:
        await ws.send_str(json.dumps(body))
        assert content(await receive_answer(ws)) == "ok"


async def test_empty_messages_are_answered(client: Client) -> None:
    """ "messages": [] is a request: the echo engine answers its non-text placeholder."""
    async with client.ws_connect(PATH) as ws:
        await ws.send_json({"model": "m", "messages": []})
        answer = await receive_answer(ws)
    assert content(answer) == "<chunk 1: non-text content>"
