"""bench's load generator: connections that send requests and check what comes back.

Each connection sends closed-loop (the next request once an answer ends,
``concurrent`` at a time) or, with a rate, open-loop at fixed times. Every
envelope is checked: ids consecutive per connection, one terminal per
request, and (``verify_text``, for the echo engine) the answer equal to the
prompt. Failures are counted by kind: an error envelope's code, a close
code, a refused upgrade, a connection that could not be made or was lost, a
check that failed.
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import resource
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgspec

from realtime_daemon.tools.client import Reach, why_not_connected

__all__ = ["Plan", "Tally", "load", "make_prompt", "run_process", "share_progress"]

ALPHABET = "aé中🙂"  # 1- to 4-byte UTF-8
_GAP_SAMPLES = 200_000
_WS_TIMEOUT = aiohttp.ClientWSTimeout(ws_close=1.0)  # a cut run waits no longer for Closes
_decode = msgspec.json.Decoder().decode  # the client's per-chunk cost: msgspec, not json

# Requests done and failed, two counters per client process, shared with the parent
# for its progress line; each process writes only its own pair.
_progress: Any = None
_slot = 0


def share_progress(progress: Any) -> None:
    """A client process's initializer: the parent's progress counters."""
    global _progress
    _progress = progress


def make_prompt(chars: int, salt: int) -> str:
    return "".join(ALPHABET[(i + salt) % 4] for i in range(chars))


@dataclass
class Plan:
    """The load one client process puts on the server.

    ``concurrent`` requests are in flight per connection; with
    ``request_ids`` they carry ids (and the session is asked for that
    concurrency), without, they are pipelined and their answers read in order.
    With ``requests`` 0, each connection sends for ``duration`` seconds; the
    answers in flight then have ``grace`` seconds more, and those still in
    flight after it are cut (counted in :attr:`Tally.cut`).
    """

    url: str
    connections: int
    requests: int
    concurrent: int = 1
    duration: float = 0.0
    prompt_chars: int = 100
    rate: float = 0.0  # requests per second for this process; 0: closed loop
    verify_text: bool = False
    model: str = "bench"
    request_ids: bool = False
    reach: Reach = field(default_factory=Reach)
    grace: float = 5.0


@dataclass
class Tally:
    """What came back: answers ok, failures by kind, latency samples, volume."""

    ok: int = 0
    opened: int = 0  # connections the daemon let in
    sent: int = 0
    cut: int = 0  # requests still in flight when the run was cut
    failures: collections.Counter[str] = field(default_factory=collections.Counter)
    ttfc: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)
    chunks: int = 0
    bytes: int = 0

    def gap(self, value: float) -> None:
        if len(self.gaps) < _GAP_SAMPLES:
            self.gaps.append(value)
        elif random.random() < 0.01:
            self.gaps[random.randrange(_GAP_SAMPLES)] = value


@dataclass
class _Pending:
    text: str
    sent: float
    last: float = 0.0
    got: list[str] = field(default_factory=list)
    first: bool = True


class _Connection:
    """One connection's requests and the checks on what comes back."""

    def __init__(self, plan: Plan, tally: Tally, index: int) -> None:
        self.plan, self.tally, self.index = plan, tally, index
        self.next_id = 1
        self.sent = 0
        self.pending: dict[str, _Pending] = {}
        self.order: collections.deque[str] = collections.deque()
        self.room = asyncio.Semaphore(plan.concurrent)
        self.ids = plan.request_ids
        self.opened = False

    async def run(
        self,
        session: aiohttp.ClientSession,
        tls: ssl.SSLContext | bool,
        deadline: float | None,
        end: float | None,
    ) -> None:
        """Connect, send and check until the plan is done, or ``end`` (monotonic) has
        passed: the requests still in flight then are counted as cut."""
        scope = asyncio.timeout(None if end is None else max(end - time.monotonic(), 0.0))
        try:
            async with scope:
                await self._run(session, tls, deadline)
        except TimeoutError:
            if not scope.expired():
                raise
            if self.opened:
                self.tally.cut += len(self.pending)
            else:
                self.tally.failures["cannot connect: timed out"] += self.plan.requests or 1
        finally:
            self.tally.sent += self.sent

    async def _run(
        self, session: aiohttp.ClientSession, tls: ssl.SSLContext | bool, deadline: float | None
    ) -> None:
        plan = self.plan
        try:
            ws = await session.ws_connect(
                plan.url,
                max_msg_size=0,
                headers=plan.reach.header_dict(),
                ssl=tls,
                timeout=_WS_TIMEOUT,
            )
        except aiohttp.WSServerHandshakeError as exc:
            self.tally.failures[f"refused {exc.status}"] += plan.requests or 1
            return
        except (aiohttp.ClientError, OSError) as exc:
            self.tally.failures[f"cannot connect: {why_not_connected(exc)}"] += plan.requests or 1
            return
        self.opened = True
        self.tally.opened += 1
        async with ws:
            if self.ids:
                update = {"max_concurrent_requests": self.plan.concurrent}
                await ws.send_json({"type": "session.update", "session": update})
            sender = asyncio.create_task(self._send(ws, deadline))
            try:
                await self._receive(ws, sender)
            finally:
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)

    def _more(self, deadline: float | None) -> bool:
        if deadline is None:
            return self.sent < self.plan.requests
        return time.monotonic() < deadline

    async def _send(self, ws: aiohttp.ClientWebSocketResponse, deadline: float | None) -> None:
        interval = self.plan.connections / self.plan.rate if self.plan.rate else 0.0
        due = time.monotonic() + random.random() * interval
        while self._more(deadline):
            if interval:
                if deadline is not None and due >= deadline:
                    return
                await asyncio.sleep(max(due - time.monotonic(), 0))
                # Open loop: latency counts from when the request was due, so that
                # time spent behind a pushing-back socket is not left out.
                sent, due = due, due + interval
            else:
                await self.room.acquire()
                sent = time.monotonic()
            self.sent += 1
            rid = f"{self.index}-{self.sent}"
            text = make_prompt(self.plan.prompt_chars, self.sent)
            body: dict[str, Any] = {
                "model": self.plan.model,
                "messages": [{"role": "user", "content": text}],
            }
            if self.ids:
                body["request_id"] = rid
            self.pending[rid] = _Pending(text, sent)
            self.order.append(rid)
            await ws.send_str(json.dumps(body))

    async def _receive(
        self, ws: aiohttp.ClientWebSocketResponse, sender: asyncio.Task[None]
    ) -> None:
        tally = self.tally
        while not (sender.done() and not self.pending):
            msg = await ws.receive()
            now = time.monotonic()
            if msg.type is not aiohttp.WSMsgType.TEXT:
                kind = f"close {msg.data}" if msg.type is aiohttp.WSMsgType.CLOSE else "lost"
                tally.failures[kind] += len(self.pending) or 1
                return
            tally.bytes += len(msg.data)
            envelope = _decode(msg.data)
            if envelope.get("id") != str(self.next_id):
                tally.failures["ids not consecutive"] += 1
                self.next_id = int(envelope.get("id") or 0)
            self.next_id += 1
            if envelope.get("event") == "session.updated":
                continue
            rid = envelope.get("request_id") if self.ids else next(iter(self.order), None)
            answer = self.pending.get(rid) if isinstance(rid, str) else None
            if answer is None or not isinstance(rid, str):
                tally.failures["envelope for no request"] += 1
                continue
            if envelope.get("event") == "error":
                code = (envelope.get("error") or {}).get("code", "error")
                self._done(rid, f"error {code}")
                continue
            tally.chunks += 1
            if answer.first:
                tally.ttfc.append(now - answer.sent)
                answer.first = False
            else:
                tally.gap(now - answer.last)
            answer.last = now
            choice = envelope["data"]["choices"][0]
            answer.got.append(choice["delta"].get("content") or "")
            if choice.get("finish_reason"):
                text = "".join(answer.got)
                wrong = self.plan.verify_text and text != answer.text
                self._done(rid, "text differs from the prompt" if wrong else None)

    def _done(self, rid: str, failure: str | None) -> None:
        del self.pending[rid]
        if rid in self.order:
            self.order.remove(rid)
        if failure is None:
            self.tally.ok += 1
        else:
            self.tally.failures[failure] += 1
        if _progress is not None:
            _progress[_slot + (failure is not None)] += 1
        self.room.release()


async def load(plan: Plan, first_index: int = 0) -> Tally:
    """Run ``plan`` in this process (``benchmarks/run.py`` does); what came back."""
    return await _load(plan, first_index)


async def _load(plan: Plan, first_index: int) -> Tally:
    tally = Tally()
    deadline = None if plan.requests else time.monotonic() + plan.duration
    end = None if deadline is None else deadline + plan.grace
    tls = plan.reach.ssl()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        connections = [_Connection(plan, tally, first_index + n) for n in range(plan.connections)]
        await asyncio.gather(*(c.run(session, tls, deadline, end) for c in connections))
    return tally


def run_process(plan: Plan, first_index: int, slot: int) -> dict[str, Any]:
    """One client process: its tally, and the CPU it used."""
    global _slot
    _slot = slot
    started, cpu = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF)
    tally = asyncio.run(_load(plan, first_index))
    used = resource.getrusage(resource.RUSAGE_SELF)
    seconds = used.ru_utime - cpu.ru_utime + used.ru_stime - cpu.ru_stime
    wall = time.monotonic() - started
    return {
        "ok": tally.ok,
        "opened": tally.opened,
        "sent": tally.sent,
        "cut": tally.cut,
        "failures": dict(tally.failures),
        "ttfc": tally.ttfc,
        "gaps": tally.gaps,
        "chunks": tally.chunks,
        "bytes": tally.bytes,
        "cpu": seconds / wall if wall else 0.0,
        "wall": wall,
    }
