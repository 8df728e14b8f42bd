"""Network faults on loopback that real peers cannot be made to produce on demand: a relay whose connections
go dead without a word, as a pulled cable, a rebooted switch or a firewall that forgot them leaves them."""

from __future__ import annotations

import os
import random
import socket
import threading


def free_port() -> int:
    """A TCP port on 127.0.0.1 free at the time of asking: one the system picks, or, where the machine is shared
    and its tests may only use some ports, one of ``INSPECTOR_TEST_PORTS`` ("47300-47399")."""
    span = os.environ.get("INSPECTOR_TEST_PORTS", "")
    ports = [0]
    if span:
        low, high = (int(p) for p in span.split("-"))
        ports = random.sample(range(low, high + 1), high + 1 - low)
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise OSError(f"no free TCP port in INSPECTOR_TEST_PORTS={span}")


class Partition:
    """A TCP relay on 127.0.0.1 (``port``) to a server on ``server_port`` (a broker, a daemon).

    ``hold()``: every connection relayed so far goes dead. Its bytes are swallowed both ways (sent, never
    delivered, never acknowledged) and it stays open: neither end gets a FIN or a RST, as after a pulled cable.
    New connections are relayed as before. ``cut()``: the dead connections are closed, as a router's timeout
    would close them."""

    def __init__(self, server_port: int) -> None:
        self.server_port = server_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._live: list[tuple[socket.socket, socket.socket]] = []
        self._dead: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.server_port))
            with self._lock:
                self._live.append((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if src not in self._dead:
                    dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            s.close()

    def hold(self) -> None:
        with self._lock:
            self._dead.update(s for pair in self._live for s in pair)
            self._live = []

    def cut(self) -> None:
        with self._lock:
            dead, self._dead = self._dead, set()
        for s in dead:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.hold()
        self.cut()
        self.listener.close()
