"""A TCP proxy between the client and the real server that breaks connections on demand.

``drop_next_responses(n)``: the next ``n`` responses are swallowed -- the request reaches the
server, which acts on it and answers, but the client's connection is reset (RST) instead of
receiving the answer. That is the worst case for a client: the server committed, the client
saw an error. ``reset_next_connections(n)`` resets the next ``n`` connections before anything
is forwarded: the request never reached the server.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading


def _reset(sock: socket.socket) -> None:
    # SO_LINGER with a zero timeout makes close() send RST rather than FIN.
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class FlakyProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._drop = 0
        self._reset_connections = 0
        self.connections = 0
        self.dropped_responses = 0
        self.reset_connections = 0
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def drop_next_responses(self, n: int = 1) -> None:
        with self._lock:
            self._drop = n

    def reset_next_connections(self, n: int = 1) -> None:
        with self._lock:
            self._reset_connections = n

    def close(self) -> None:
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _take(self, counter: str) -> bool:
        with self._lock:
            if getattr(self, counter) > 0:
                setattr(self, counter, getattr(self, counter) - 1)
                return True
            return False

    def _serve(self, client: socket.socket) -> None:
        with self._lock:
            self.connections += 1
        if self._take("_reset_connections"):
            with self._lock:
                self.reset_connections += 1
            _reset(client)
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        except OSError:
            _reset(client)
            return
        self._pump(client, upstream)

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        """Copies bytes both ways from one thread, so that no other thread is blocked on
        the client's socket when it is reset (a socket closed under a blocked ``recv``
        would not be released, and the client would wait for ever)."""
        peer = {client: upstream, upstream: client}
        try:
            while True:
                readable, _, _ = select.select([client, upstream], [], [], 30)
                if not readable:
                    break
                for source in readable:
                    chunk = source.recv(65536)
                    if not chunk:
                        return
                    if source is upstream and self._take("_drop"):
                        # The server answered, so it acted on the request: lose the answer.
                        with self._lock:
                            self.dropped_responses += 1
                        _reset(client)
                        return
                    peer[source].sendall(chunk)
        except OSError:
            pass
        finally:
            client.close()
            upstream.close()
