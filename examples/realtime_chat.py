"""A two-turn text conversation with realtime-daemon through the official OpenAI SDK.

pip install 'openai[realtime]>=1.107'
python examples/realtime_chat.py [HOST:PORT] [MODEL]
"""

import asyncio
import sys

from openai import AsyncOpenAI


async def main(address: str = "127.0.0.1:8000", model: str = "echo") -> None:
    client = AsyncOpenAI(
        api_key="unused",  # or a token of --auth-token-file
        base_url=f"http://{address}/v1",
        websocket_base_url=f"ws://{address}/v1",
    )
    async with client.realtime.connect(model=model) as conn:
        await conn.session.update(
            session={"type": "realtime", "instructions": "Answer in one sentence."}
        )
        for question in ("What is a WebSocket?", "And a daemon?"):
            await conn.conversation.item.create(
                item={
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": question}],
                }
            )
            await conn.response.create()
            async for event in conn:
                if event.type == "response.output_text.delta":
                    print(event.delta, end="", flush=True)
                elif event.type == "error":
                    print(f"error: {event.error.message}", file=sys.stderr)
                elif event.type == "response.done":
                    print(f"  [{event.response.status}]")
                    break


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
