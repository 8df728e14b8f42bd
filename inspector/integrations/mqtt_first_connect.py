"""Whether an MQTT subscriber's first connection gives it a broker to use: said at once, not after ``--silence-s``.

A TCP connection that no broker answers (an HTTP server or a daemon's ZeroMQ port given for the broker, ``mqtt://``
to a TLS listener, a broker refusing this client's credentials) left ``inspector subscribe mqtt://…`` printing
"subscribed to …" and then nothing until ``--silence-s`` ran out, then retrying for ever: the same run that exits 2
at once for a refused or unresolvable address. The first CONNACK (or its absence) decides: accepted, the
subscriber runs; refused for a reason a retry cannot change, closed before any CONNACK, or no CONNACK within
:data:`CONNACK_WAIT_S`: one line naming the broker (the command exits 2); refused for a passing reason (the broker
unavailable or busy), one notice and paho retries, as after any later drop.
"""

from __future__ import annotations

import threading

# A broker answers CONNECT within a round trip; paho waits this long for the TCP connection itself (its
# connect_timeout's default), so a broker that is no broker is told as soon as one that is not there.
CONNACK_WAIT_S = 5.0

# CONNACK refusals a retry may overcome (MQTT 5.0 §3.2.2.2 reason codes; paho 2 gives an MQTT 3.1.1 return code
# as its MQTT 5 equivalent: 3 Server unavailable → 0x88, §3.2.2.3): 0x80 Unspecified error, 0x88 Server
# unavailable, 0x89 Server busy, 0x97 Quota exceeded, 0x9F Connection rate exceeded. Every other refusal (0x84
# Unsupported protocol version, 0x85 Client identifier not valid, 0x86 Bad user name or password, 0x87 Not
# authorized, 0x8A Banned, 0x8C Bad authentication method, ...) answers each retry the same way.
PASSING_REFUSALS = frozenset({0x80, 0x88, 0x89, 0x97, 0x9F})


def refusal_passes(reason_code) -> bool:
    """Whether a CONNACK refusal (paho's ``ReasonCode``, or its int value) may pass by retrying."""
    return int(getattr(reason_code, "value", reason_code)) in PASSING_REFUSALS


class FirstConnect:
    """The outcome of a subscriber's first connection, as paho's network thread reports it: :meth:`accepted`,
    :meth:`refused` (CONNACK), :meth:`closed` (a disconnect); :meth:`problem` waits for it. After the first
    outcome every report is ignored: later drops are the silence clock's and the notices' to tell."""

    def __init__(self, address: str) -> None:
        self.address = address  # host:port, for the lines
        self._done = threading.Event()
        self._problem: str | None = None
        self._refused = False  # a CONNACK refused this connection: its disconnect is no 'closed before'

    def accepted(self) -> None:
        self._done.set()

    def refused(self, reason_code) -> None:
        """A CONNACK refused: the outcome is a problem when no retry can change it; after a passing refusal the
        subscriber runs, paho retries and the notice says so, as for any later refusal."""
        self._refused = True
        if refusal_passes(reason_code):
            self._done.set()
        else:
            self._decide(f"the broker refused the connection: {reason_code} "
                         f"(0x{int(getattr(reason_code, 'value', reason_code)):02X})")

    def closed(self, reason_code) -> None:
        """The connection ended; before any CONNACK, the peer is no broker that takes this client."""
        if self._refused:
            self._refused = False
            return
        self._decide(f"it closed the connection before answering CONNECT ({reason_code}): no MQTT broker on that port, "
                     f"or a TLS listener (mqtts://)?")

    def _decide(self, problem: str) -> None:
        if not self._done.is_set():
            self._problem = problem
            self._done.set()

    def problem(self, wait_s: float = CONNACK_WAIT_S) -> str | None:
        """Wait up to ``wait_s`` for the outcome: None when the broker took the connection (or refused it for a
        passing reason and is retried), else why it cannot be used, one phrase naming the address."""
        if not self._done.wait(wait_s):
            self._decide(f"no MQTT answer (CONNACK) from it within {wait_s:g} s: no MQTT broker on that port, or a "
                         f"TLS listener (mqtts://)?")
        return None if self._problem is None else f"cannot use the broker at {self.address}: {self._problem}"
