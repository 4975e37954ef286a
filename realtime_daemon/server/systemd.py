"""The systemd service protocols, without dependencies: sd_notify and socket activation.

Written against the documented protocols (sd_notify(3), sd_listen_fds(3)):
a notification is one datagram on the AF_UNIX socket named by
``$NOTIFY_SOCKET`` (a leading ``@`` names the abstract namespace); inherited
listening sockets start at file descriptor 3, ``$LISTEN_FDS`` of them, meant
for the process whose pid is ``$LISTEN_PID``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

__all__ = ["LISTEN_FDS_START", "Notifier", "listen_sockets", "watchdog_interval"]

LISTEN_FDS_START = 3


class Notifier:
    """Sends sd_notify messages; does nothing when not started by systemd.

    Args:
        address: the value of ``$NOTIFY_SOCKET``, or None.
    """

    def __init__(self, address: str | None) -> None:
        self._address: str | None = None
        self._socket: socket.socket | None = None
        self._always: tuple[str, ...] = ()
        if address and address[0] in "/@":
            # A leading "@" is the abstract namespace: a NUL byte on the wire.
            self._address = "\0" + address[1:] if address[0] == "@" else address
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> Notifier:
        """The notifier ``$NOTIFY_SOCKET`` asks for."""
        return cls(environ.get("NOTIFY_SOCKET"))

    @classmethod
    def connected(cls, sock: socket.socket, *always: str) -> Notifier:
        """A notifier that sends on an already connected datagram socket.

        Workers of ``--workers`` report to their supervisor this way, in the
        same format as to systemd, with the ``always`` fields added to every
        message (a worker's ``WORKER=<pid>``).
        """
        notifier = cls(None)
        notifier._socket = sock
        notifier._always = always
        return notifier

    @property
    def enabled(self) -> bool:
        """Whether there is a service manager to tell."""
        return self._socket is not None

    def send(self, *fields: str) -> bool:
        """Send ``fields`` (e.g. ``"READY=1"``) as one notification.

        Returns:
            whether it was sent; a manager that went away is not an error.
        """
        if self._socket is None:
            return False
        message = "\n".join((*self._always, *fields)).encode()
        try:
            if self._address is None:
                self._socket.send(message)
            else:
                self._socket.sendto(message, self._address)
        except OSError:
            return False
        return True

    def close(self) -> None:
        """Release the socket."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def watchdog_interval(environ: Mapping[str, str] = os.environ) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings: half of ``$WATCHDOG_USEC``, if it is for us."""
    usec = environ.get("WATCHDOG_USEC", "")
    pid = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None
    return int(usec) / 2 / 1_000_000


def listen_sockets(environ: dict[str, str] | os._Environ[str] = os.environ) -> list[socket.socket]:
    """The listening sockets systemd passed us, if any, and forget the variables.

    The variables are removed (as ``sd_listen_fds(1)`` does) so that a child
    process does not take the sockets for its own.
    """
    count = environ.pop("LISTEN_FDS", "")
    pid = environ.pop("LISTEN_PID", "")
    environ.pop("LISTEN_FDNAMES", None)
    if not count.isdigit() or pid != str(os.getpid()):
        return []
    sockets = []
    for fd in range(LISTEN_FDS_START, LISTEN_FDS_START + int(count)):
        os.set_inheritable(fd, False)
        sockets.append(socket.socket(fileno=fd))
    return sockets
