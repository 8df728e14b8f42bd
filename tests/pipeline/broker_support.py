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
    def __init__(self, folder: Path, persistence: bool = True, options: tuple[str, ...] = ()) -> None:
        """``options``: more mosquitto.conf lines, for the listener (TLS files, ``allow_anonymous false`` …)."""
        self.port = free_port()
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        # run as root, mosquitto switches to user 'mosquitto', which cannot write its persistence file
        # into our temporary folder: stay the user we are (no effect when not root)
        lines = [f"user {getpass.getuser()}", f"listener {self.port} 127.0.0.1", "allow_anonymous true",
                 f"persistence {'true' if persistence else 'false'}", f"persistence_location {folder}/",
                 "log_dest stderr", "max_queued_messages 100000", *options]
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


def password_broker(folder: Path, user: str = "op", password: str = "right") -> Mosquitto:
    """A started Mosquitto that lets in ``user`` with ``password`` only (``allow_anonymous false``, a
    mosquitto_passwd file under ``folder``)."""
    folder.mkdir(parents=True, exist_ok=True)
    users = folder / "users"
    subprocess.run([shutil.which("mosquitto_passwd") or "mosquitto_passwd", "-b", "-c", str(users), user, password],
                   check=True, capture_output=True)
    users.chmod(0o600)
    return Mosquitto(folder / "broker", options=("allow_anonymous false", f"password_file {users}")).start()
