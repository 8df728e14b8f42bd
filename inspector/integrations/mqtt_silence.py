"""Why an MQTT subscriber hears nothing: told once, as the ZeroMQ subscriber tells it (:class:`inspector.client.
Silence`, ``inspector subscribe --silence-s``).

A broker accepts a subscription to topics nobody publishes on without a word, and paho retries a lost broker
silently: ``inspector subscribe mqtt://broker/wrong-prefix``, a daemon whose bridge never connected, or a broker
stopped mid-run all looked the same (nothing printed, for ever). Which of them it is comes from the connection's
state as paho reports it (CONNACK, SUBACK, disconnect, failed reconnects): not reached, connected but the
subscription not confirmed, or connected and subscribed with nothing published under the prefix.
"""

from __future__ import annotations

import time

from inspector.events import utc_iso
from inspector.silence import SilenceClock


class BrokerSilence(SilenceClock):
    """Tells, once, that a subscriber has heard nothing at all (no event, no v1/stats, no retained status, no
    bridge counts) for ``silence_s`` seconds, and why; then once when a message comes or, told while the broker
    could not be reached, once it connects; after which a new silence is told again. ``silence_s`` 0: never.

    ``url`` (credentials redacted) leads each line; ``address`` is the broker's ``host:port``, ``prefix`` the
    topic prefix subscribed under. paho's network thread reports the connection (:meth:`connected`,
    :meth:`subscribed`, :meth:`down`, :meth:`cannot_connect`) and each arrival (:meth:`heard`); the reader asks
    :meth:`check` when its wait ends. Times are ``time.monotonic()`` seconds."""

    def __init__(self, url: str, address: str, prefix: str, silence_s: float) -> None:
        super().__init__(url, silence_s)
        self.url, self.address, self.prefix = url, address, prefix
        self.link: str | None = None  # None: no CONNACK yet; "connected"; "down" (dropped, reconnecting)
        self.acknowledged = False  # the broker answered this connection's SUBSCRIBE (SUBACK)
        self.problem: str | None = None  # why the last connect attempt failed, until one succeeds
        self.dropped_utc: str | None = None  # when the connection last dropped

    def connected(self) -> str | None:
        """A CONNACK accepted: the line telling it, when a silence was told while the broker was not reached."""
        with self._lock:
            was, self.link, self.problem, self.acknowledged = self.link, "connected", None, False
            if self.told and was != "connected":
                self.told, self.heard_at = False, time.monotonic()  # silent from here on: told again, as such
                return f"{self.url}: connected to the broker (at {utc_iso()})"
            return None

    def subscribed(self) -> None:
        """The broker answered the SUBSCRIBE (SUBACK; a refused filter is told on its own, as an error)."""
        self.acknowledged = True

    def down(self) -> None:
        """The connection dropped (paho reconnects). A silence told already (connected, nothing published) is
        over: a new one is told, with this reason, should nothing come in ``silence_s``."""
        with self._lock:
            self.link, self.dropped_utc, self.acknowledged = "down", utc_iso(), False
            if self.told:
                self.told, self.heard_at = False, time.monotonic()

    def cannot_connect(self, why: str) -> None:
        """A connect attempt failed, or the broker refused it in its CONNACK (``why``, one phrase)."""
        with self._lock:
            self.problem = why
            if self.link == "connected":
                self.link = "down"

    def check(self) -> str | None:
        """The line telling the silence, when it is due (once)."""
        with self._lock:
            if self.due_in() != 0.0:
                return None
            self.told = True
            dropped = f"the connection dropped at {self.dropped_utc}; " if self.link == "down" else ""
            until = "something arrives" if self.link == "connected" else "the broker is reached"
            return (f"{self.url}: heard nothing for {self.silence_s:g} s (no event, no v1/stats heartbeat, no "
                    f"retained status): {dropped}{self._reason()}; still waiting (told once {until})")

    def _reason(self) -> str:
        """Why nothing is heard, from the connection's state."""
        if self.link != "connected":
            if self.problem:
                return f"the broker at {self.address} cannot be used: {self.problem}"
            if self.link == "down":
                return f"reconnecting to the broker at {self.address}"
            return (f"no answer from the broker at {self.address} yet (no CONNACK: a host down, a firewall "
                    f"dropping the packets, or no MQTT broker on that port?)")
        if not self.acknowledged:
            return "connected to the broker, but it has not answered the subscription (SUBACK) yet"
        return (f"connected to the broker and subscribed, but nothing is published under '{self.prefix}/': no "
                f"daemon publishes there (none running, its MQTT bridge not connected to this broker, or another "
                f"publish.mqtt.topic_prefix: the path of the URL names it), its bridge sends no v1/stats "
                f"(publish.mqtt.stats: false), or the broker's ACL withholds them from this user")
