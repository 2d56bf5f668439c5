"""A TCP server of a test's own on a free loopback port: each connection it accepts goes
to `accepted` (on the accepting thread; start a thread there for long work)."""

from __future__ import annotations

import socket
import threading

from threadhost.processes import free_port


class LoopbackServer:
    def __init__(self) -> None:
        self.port = free_port()
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._stopped = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def accepted(self, connection: socket.socket) -> None:
        raise NotImplementedError

    def _serve(self) -> None:
        self._server.settimeout(0.2)
        while not self._stopped.is_set():
            try:
                connection, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:  # closed: stopped
                return
            self.accepted(connection)

    def stop(self) -> None:
        self._stopped.set()
        self._server.close()
