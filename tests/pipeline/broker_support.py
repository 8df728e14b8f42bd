"""A real Mosquitto broker for the MQTT tests: started on a free loopback port with a temporary config,
stopped (SIGTERM: it saves its persistence file) and restarted on the same port."""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from pathlib import Path

from pipeline_support import free_port

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


class Mosquitto:
    def __init__(self, folder: Path, persistence: bool = True) -> None:
        self.port = free_port()
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        # run as root, mosquitto switches to user 'mosquitto', which cannot write its persistence file
        # into our temporary folder: stay the user we are (no effect when not root)
        lines = [f"user {getpass.getuser()}", f"listener {self.port} 127.0.0.1", "allow_anonymous true",
                 f"persistence {'true' if persistence else 'false'}", f"persistence_location {folder}/",
                 "log_dest stderr", "max_queued_messages 100000"]
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> "Mosquitto":
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.folder / "broker.log", "ab"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                assert self.proc.poll() is None, (self.folder / "broker.log").read_text()
                time.sleep(0.05)
        raise TimeoutError(f"mosquitto did not listen on {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


class Partition:
    """A TCP relay on loopback between MQTT clients and a broker that can partition the network: ``hold()``
    swallows the bytes both ways (sent, never delivered, never acknowledged: what a pulled cable does to the
    messages in flight), ``cut()`` then closes the held connections, as a router's timeout would, and the
    relay forwards again for the reconnects. A fault a real broker cannot be made to produce on demand."""

    def __init__(self, broker_port: int) -> None:
        import threading

        self.broker_port = broker_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.held = False
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        import threading

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.broker_port))
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if not self.held:
                    dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            s.close()

    def hold(self) -> None:
        self.held = True

    def cut(self) -> None:
        """Close every connection relayed so far; forward again for new ones."""
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.held = False

    def close(self) -> None:
        self.cut()
        self.listener.close()
