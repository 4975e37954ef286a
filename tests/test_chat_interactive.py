"""`realtime-daemon chat` on a terminal: a pseudo-terminal drives the prompt loop."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sys
import termios

from .conftest import PATH, StartDaemon, serve_json


class Terminal:
    """``realtime-daemon chat URL`` on a pseudo-terminal it has as its controlling tty."""

    def __init__(self, url: str) -> None:
        self.master, slave = os.openpty()

        def controlling_tty() -> None:
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "realtime_daemon",
            "chat",
            url,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            preexec_fn=controlling_tty,
        )
        self._slave = slave
        self.seen = b""

    async def start(self) -> None:
        self.process = await self.proc
        os.close(self._slave)
        os.set_blocking(self.master, False)
        loop = asyncio.get_running_loop()
        self._data: asyncio.Queue[bytes] = asyncio.Queue()
        loop.add_reader(self.master, self._readable)

    def _readable(self) -> None:
        try:
            self._data.put_nowait(os.read(self.master, 65536))
        except OSError:
            self._data.put_nowait(b"")
            asyncio.get_running_loop().remove_reader(self.master)

    async def expect(self, text: str) -> str:
        """Read until ``text`` appears; what was read up to and with it."""
        async with asyncio.timeout(10):
            while text.encode() not in self.seen:
                data = await self._data.get()
                if not data:
                    raise AssertionError(f"terminal closed before {text!r}: {self.seen!r}")
                self.seen += data
        head, _, rest = self.seen.partition(text.encode())
        self.seen = rest
        return (head + text.encode()).decode()

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())


async def test_turns_keep_the_conversation_and_ctrl_c_stops_an_answer(
    daemon: StartDaemon,
) -> None:
    """Two turns carry the history; Ctrl-C stops an answer and the session goes on;
    /reset clears the history; Ctrl-D exits 0."""
    _, port = await serve_json(daemon, "--engine", "tests.engines:MessageCounter")
    terminal = Terminal(f"ws://127.0.0.1:{port}{PATH}")
    await terminal.start()
    await terminal.expect("> ")
    terminal.type("hello\r")
    assert "1 messages: hello" in await terminal.expect("> ")
    terminal.type("again\r")
    assert "3 messages: again" in await terminal.expect("> ")
    terminal.type("slow\r")
    await terminal.expect("5 messages: slow.")
    terminal.type("\x03")  # Ctrl-C
    assert "[stopped]" in await terminal.expect("> ")
    terminal.type("/reset\r")
    await terminal.expect("> ")
    terminal.type("fresh\r")
    assert "1 messages: fresh" in await terminal.expect("> ")
    terminal.type("\x04")  # Ctrl-D
    async with asyncio.timeout(10):
        assert await terminal.process.wait() == 0
    asyncio.get_running_loop().remove_reader(terminal.master)
    os.close(terminal.master)
