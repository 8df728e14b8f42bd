"""Live web dashboard (``dashboard.listen``): Starlette + uvicorn, server-sent events, no build step.

Routes: ``/`` the page (assets shipped in ``static/``, no CDN), ``/api/state``
(JSON snapshot), ``/events`` (SSE: the snapshot whenever it changed, at most
every ``push_interval_s``), ``/frame/<camera>.jpg`` (newest frame),
``/defect/<event_id>/<thumbnail|anomaly_map>`` (the event's payload bytes).
When ``token_file`` is set every route needs the token (``?token=`` or
``Authorization: Bearer``); bound anywhere but loopback the config requires it.
Connections and requests are bounded by ``dashboard.limits`` (:mod:`.guard`); behind a
reverse proxy listed in ``trusted_proxies`` the per-client cap applies per forwarded address.
uvicorn runs in its own thread on a socket bound up front, so a busy port fails
:meth:`Daemon.setup` with one line. Needs the ``dashboard`` extra.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from importlib import resources
from typing import TYPE_CHECKING

from inspector.errors import ConfigError
from inspector.integrations import require
from inspector.pipeline.integration_config import DashboardSection, parse_listen
from inspector.integrations.dashboard import guard
from inspector.integrations.dashboard.state import DashboardState

if TYPE_CHECKING:
    from inspector.pipeline.daemon import Daemon

log = logging.getLogger("inspector.dashboard")
_STATIC = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
           "style.css": "text/css; charset=utf-8"}
_KINDS = {"thumbnail": "image/jpeg", "anomaly_map": "image/png"}


def build_app(state: DashboardState, cfg: DashboardSection, token: str | None, closing: threading.Event):
    """The Starlette application over ``state``."""
    require("starlette", "dashboard", "dashboard")
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    static = resources.files("inspector.integrations.dashboard") / "static"

    def allowed(request) -> bool:
        if token is None:
            return True
        given = request.query_params.get("token") or request.headers.get("authorization", "").removeprefix("Bearer ")
        return guard.token_matches(given, token)

    def checked(handler):
        async def wrapped(request):
            if not allowed(request):
                return Response("token required\n", status_code=401, media_type="text/plain")
            return await handler(request)
        return wrapped

    async def page(request):
        name = request.path_params.get("name", "index.html")
        if name not in _STATIC:
            return Response(status_code=404)
        return Response((static / name).read_bytes(), media_type=_STATIC[name],
                        headers={"Cache-Control": "no-cache"})

    async def api_state(request):
        return JSONResponse(state.snapshot())

    async def events(request):
        async def stream():
            sent = -1
            yield "retry: 1000\n\n"
            while not closing.is_set() and not await request.is_disconnected():
                if state.version != sent:
                    # encoded once per change and shared by every client: n browsers cost one encoding
                    sent, data = state.snapshot_json()
                    yield data
                await asyncio.sleep(cfg.push_interval_s)
        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    async def frame(request):
        data = await asyncio.to_thread(state.frame_jpeg, request.path_params["camera"])
        return Response(data, media_type="image/jpeg") if data else Response(status_code=404)

    async def payload(request):
        kind = request.path_params["kind"]
        data = state.payload(request.path_params["event_id"], kind) if kind in _KINDS else None
        return Response(data, media_type=_KINDS[kind]) if data else Response(status_code=404)

    app = Starlette(routes=[
        Route("/", checked(page)), Route("/static/{name}", checked(page)), Route("/api/state", checked(api_state)),
        Route("/events", checked(events)), Route("/frame/{camera}.jpg", checked(frame)),
        Route("/defect/{event_id}/{kind}", checked(payload)),
    ])
    return guard.ClientCap(app, cfg.limits.max_per_client, guard.networks(cfg.trusted_proxies))


class DashboardServer(DashboardState):
    """The dashboard's state (an event tap) plus the uvicorn server thread that serves it."""

    def __init__(self, cfg: DashboardSection, daemon: "Daemon") -> None:
        super().__init__(cfg, [c.name for c in daemon.cfg.cameras])
        uvicorn = require("uvicorn", "dashboard", "dashboard")
        token = guard.read_token(cfg.token_file, "dashboard.token_file")
        sock = _listening_socket(cfg.listen)
        self._closing = threading.Event()
        app = build_app(self, cfg, token, self._closing)
        # log_config=None: uvicorn's complaints go through the daemon's logging, throttled (a peer
        # sending garbage must not flood the log); http=: the connection limits of ``guard``;
        # proxy_headers=False: uvicorn would otherwise trust X-Forwarded-For from $FORWARDED_ALLOW_IPS
        # (default 127.0.0.1); ``trusted_proxies`` alone decides, in guard.ClientCap.
        guard.throttled(logging.getLogger("uvicorn.error"))
        trusted = guard.networks(cfg.trusted_proxies)
        config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=2,
                                access_log=False, log_config=None, http=guard.guarded_h11(cfg.limits, trusted),
                                limit_concurrency=cfg.limits.max_connections, proxy_headers=False)
        self._server = uvicorn.Server(config)
        self._sock = sock
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, name="dashboard",
                                        daemon=True)
        self._thread.start()
        self.url = f"http://{cfg.listen}/"
        log.info("dashboard on %s%s", self.url, " (token required)" if token else "")

    def close(self) -> None:
        self._closing.set()
        self._server.should_exit = True
        self._thread.join(5)
        self._sock.close()


def _listening_socket(listen: str) -> socket.socket:
    """A socket bound to ``listen`` and listening; ConfigError (one line) when the address is taken or foreign.

    Listening now, not when uvicorn's thread gets to it: a client that connects right after the daemon
    reports the dashboard up waits in the backlog instead of being refused.
    """
    host, port = parse_listen("dashboard.listen", listen)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"dashboard.listen: cannot listen on {listen}: {exc.strerror or exc}") from None
    sock.listen(128)
    return sock
