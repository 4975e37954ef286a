"""The bounded request channel between a connection's reader and its engine.

The reader puts frame payloads in; the channel decodes each one into a
:class:`~realtime_daemon.protocol.Request` and holds at most ``maxsize`` of
them. When it is full, :meth:`RequestChannel.put` waits, the reader stops
reading the socket, and TCP pushes back on the client. The engine iterates the
channel; iteration ends once the channel is closed and emptied.

This module knows nothing of aiohttp: it is plain asyncio.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Protocol

from .protocol import Request, decode_request

__all__ = ["ChannelClosed", "ChannelObserver", "RequestChannel"]


class ChannelClosed(Exception):
    """Raised by :meth:`RequestChannel.put` once the channel is closed."""


class ChannelObserver(Protocol):
    """Told of the channel's events, e.g. for metrics."""

    def asked(self) -> None:
        """The consumer asks for its next request."""

    def took(self, depth: int) -> None:
        """The consumer took a request; ``depth`` were queued before it did."""

    def pushed_back(self) -> None:
        """A put found the channel full and waits."""


# Lists, not deques: an idle connection holds three of these, an empty
# deque preallocates ~600 bytes, and they rarely hold more than one future.
_Waiters = list["asyncio.Future[None]"]


class RequestChannel:
    """A bounded FIFO of decoded requests with end-of-stream.

    Args:
        maxsize: how many decoded requests it holds before ``put`` waits.
        observer: told when the consumer asks and takes, and of pushbacks.

    Attributes:
        received: requests decoded and accepted so far.
        high_water: the largest depth seen.
        pushbacks: how many times ``put`` had to wait for room.
    """

    __slots__ = (
        "_closed",
        "_getters",
        "_items",
        "_maxsize",
        "_observer",
        "_pushback_waiters",
        "_putters",
        "high_water",
        "pushbacks",
        "received",
    )

    def __init__(self, maxsize: int, observer: ChannelObserver | None = None) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._maxsize = maxsize
        self._observer = observer
        # A list: at most maxsize (64) items, and an empty deque costs ~700 bytes.
        self._items: list[Request] = []
        self._closed = False
        self._getters: _Waiters = []
        self._putters: _Waiters = []
        self._pushback_waiters: _Waiters = []
        self.received = 0
        self.high_water = 0
        self.pushbacks = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    async def put(self, frame: bytes) -> None:
        """Decode one frame and queue it, waiting while the channel is full.

        Raises:
            FrameError: the frame is not a chat-completion request.
            ChannelClosed: the channel was closed before the request fitted.
        """
        request = decode_request(frame)
        if len(self._items) >= self._maxsize and not self._closed:
            self.pushbacks += 1
            _wake_all(self._pushback_waiters)
            if self._observer is not None:
                self._observer.pushed_back()
            while len(self._items) >= self._maxsize and not self._closed:
                await _wait(self._putters)
        if self._closed:
            raise ChannelClosed
        self._items.append(request)
        self.received += 1
        self.high_water = max(self.high_water, len(self._items))
        _wake_one(self._getters)

    def close(self) -> None:
        """End the stream: queued requests are still delivered, then iteration stops."""
        self._closed = True
        _wake_all(self._getters)
        _wake_all(self._putters)

    async def wait_pushback(self) -> None:
        """Wait until a ``put`` finds the channel full, i.e. the reader is held back."""
        if self.pushbacks == 0:
            await _wait(self._pushback_waiters)

    def __aiter__(self) -> AsyncIterator[Request]:
        return self

    async def __anext__(self) -> Request:
        observer = self._observer
        if observer is not None:
            observer.asked()
        while not self._items:
            if self._closed:
                raise StopAsyncIteration
            await _wait(self._getters)
        depth = len(self._items)
        request = self._items.pop(0)
        _wake_one(self._putters)
        if observer is not None:
            observer.took(depth)
        return request


async def _wait(waiters: _Waiters) -> None:
    future = asyncio.get_running_loop().create_future()
    waiters.append(future)
    try:
        await future
    except asyncio.CancelledError:
        if future.cancelled():
            if future in waiters:
                waiters.remove(future)
        else:
            # Woken and cancelled in the same pass: hand the wake-up on.
            _wake_one(waiters)
        raise


def _wake_one(waiters: _Waiters) -> None:
    while waiters:
        future = waiters.pop(0)
        if not future.done():
            future.set_result(None)
            return


def _wake_all(waiters: _Waiters) -> None:
    pending, waiters[:] = waiters[:], []
    for future in pending:
        if not future.done():
            future.set_result(None)
