"""The bounded channel between a connection's reader and its session.

The reader puts frame payloads in; the channel decodes each one (through the
session's dialect) into a session event (:mod:`realtime_daemon.wire.events`). Requests, and the
in-band refusals of request frames, queue in arrival order, at most
``maxsize`` of them: when the queue is full, :meth:`RequestChannel.put`
waits, the reader stops reading the socket, and TCP pushes back on the
client. Control events (cancel, session updates) queue apart and are taken
first, so they never wait behind queued requests.

This module knows nothing of aiohttp: it is plain asyncio.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Protocol

from realtime_daemon.engines.waiters import Waiters
from realtime_daemon.wire.chat import decode_request
from realtime_daemon.wire.events import Event, Events, Submit, is_request, needs_room

__all__ = ["ChannelClosed", "ChannelObserver", "RequestChannel"]


class ChannelClosed(Exception):
    """Raised by :meth:`RequestChannel.put` once the channel is closed."""


class ChannelObserver(Protocol):
    """Told of the channel's events, e.g. for metrics."""

    def took(self, depth: int) -> None:
        """The session took a request; ``depth`` were queued before it did."""

    def pushed_back(self) -> None:
        """A put found the channel full and waits."""


def _always() -> bool:
    return True


def _submit(frame: bytes) -> Event:
    return Submit(decode_request(frame))


class RequestChannel:
    """A bounded FIFO of requests, a lane for control events, and end-of-stream.

    Args:
        maxsize: how many requests (and, apart, control events) it holds
            before ``put`` waits.
        decode: turns a frame into an event (or a tuple of them, queued in
            order); raises ``FrameError`` for a
            frame that closes the connection. By default every frame is a
            chat-completion request.
        observer: told when the session takes a request, and of pushbacks.

    Attributes:
        received: requests decoded and queued so far.
    """

    __slots__ = (
        "_aborted",
        "_closed",
        "_control",
        "_decode",
        "_draining",
        "_getters",
        "_maxsize",
        "_observer",
        "_putters",
        "_requests",
        "received",
    )

    def __init__(
        self,
        maxsize: int,
        decode: Callable[[bytes], Events] = _submit,
        observer: ChannelObserver | None = None,
    ) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._maxsize = maxsize
        self._decode = decode
        self._observer = observer
        self._requests: list[Event] = []
        self._control: list[Event] = []
        self._closed = False
        self._draining = False
        self._aborted = False
        self._getters = Waiters()
        self._putters = Waiters()
        self.received = 0

    def __len__(self) -> int:
        return len(self._requests)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` or :meth:`abort` was called."""
        return self._closed

    @property
    def aborted(self) -> bool:
        """Whether :meth:`abort` was called."""
        return self._aborted

    async def put(self, frame: bytes) -> None:
        """Decode one frame and queue its event, waiting while its lane is full.

        Raises:
            FrameError: the frame closes the connection (the dialect says why).
            ChannelClosed: the channel was closed before the event fitted.
        """
        events = self._decode(frame)
        if type(events) is tuple:
            for event in events:
                await self.put_event(event)
        else:
            await self.put_event(events)  # type: ignore[arg-type]  # not a tuple: one event

    async def put_event(self, event: Event) -> None:
        """Queue an event, waiting while its lane is full (see :meth:`put`)."""
        lane = self._requests if is_request(event) else self._control
        if len(lane) >= self._maxsize and not self._closed:
            if self._observer is not None:
                self._observer.pushed_back()
            while len(lane) >= self._maxsize and not self._closed:
                await self._putters.wait()
        if self._closed:
            raise ChannelClosed
        lane.append(event)
        if isinstance(event, Submit):
            self.received += 1
        self._getters.wake_one()

    async def get(
        self, can_take: Callable[[], bool] = _always, idle: Callable[[], bool] = _always
    ) -> Event | None:
        """The next control event, else the next request (while ``can_take()``; a reply
        in order at the head of the queue needs no room).

        Returns None once the channel is closed and has nothing more to give;
        when draining, once it has nothing more to give and ``idle()``; at once
        when it was aborted.
        """
        while True:
            if self._aborted:
                return None
            if self._draining and not self._requests and not self._control and idle():
                return None
            if self._control:
                event = self._control.pop(0)
                self._putters.wake_all()
                return event
            if self._requests and (not needs_room(self._requests[0]) or can_take()):
                depth = len(self._requests)
                event = self._requests.pop(0)
                self._putters.wake_all()
                if self._observer is not None and isinstance(event, Submit):
                    self._observer.took(depth)
                return event
            if self._closed and not self._requests:
                return None
            await self._getters.wait()

    def remove(self, request_id: str) -> Submit | None:
        """Take the queued request with ``request_id`` out of the queue, if it is there."""
        for event in self._requests:
            if isinstance(event, Submit) and event.request_id == request_id:
                self._requests.remove(event)
                self._putters.wake_all()
                return event
        return None

    def wake(self) -> None:
        """Make a waiting :meth:`get` look again (the session can take a request, or
        became idle)."""
        self._getters.wake_all()

    def drain(self) -> None:
        """The daemon is stopping: ``get`` ends once what is queued is done.

        Frames are still put (control messages are still answered; the
        dialect refuses new requests), so the reader keeps reading.
        """
        self._draining = True
        self._getters.wake_all()

    def close(self) -> None:
        """End the stream: what is queued is still delivered, then ``get`` returns None."""
        self._closed = True
        self._getters.wake_all()
        self._putters.wake_all()

    def abort(self) -> None:
        """End the stream now: what is queued is dropped."""
        self._aborted = True
        self._requests.clear()
        self._control.clear()
        self.close()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        event = await self.get()
        if event is None:
            raise StopAsyncIteration
        return event
