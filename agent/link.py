"""The node's one outbound websocket: connect, authenticate, take jobs, reconnect forever.

Frames go in and out here; what they mean is decided by :class:`protocol.session.AgentSession`
and the :class:`agent.worker.JobRunner`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from itertools import cycle
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import pydantic
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from agent.backoff import backoff
from agent.errors import FatalLinkError
from agent.worker import JobRunner
from protocol.chat import WireModel
from protocol.close_codes import FATAL_CLOSE_CODES
from protocol.messages import (
    Challenge,
    Draining,
    Registered,
    decode_coordinator_message,
    encode,
)
from protocol.session import (
    Accepted,
    AgentSession,
    CancelJob,
    ProtocolViolation,
    RunJob,
    ScoreJob,
)

log = logging.getLogger(__name__)

CONNECT_PATH = "/v1/nodes/connect"
HANDSHAKE_TIMEOUT_S = 15.0

LinkState = Literal["connecting", "connected", "waiting", "draining", "refused"]


def websocket_url(base: str) -> str:
    """The node endpoint for a coordinator given by its http(s) or ws(s) base URL."""
    parts = urlsplit(base)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None:
        raise ValueError(f"unsupported coordinator URL {base!r}")
    path = parts.path.rstrip("/")
    if not path.endswith(CONNECT_PATH):
        path += CONNECT_PATH
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


class Link:
    def __init__(
        self, coordinators: tuple[str, ...], new_session: Callable[[], AgentSession],
        runner: JobRunner, *,
        drain_grace_s: float, backoff_initial_s: float = 1.0, backoff_max_s: float = 30.0,
        max_frame_bytes: int = 1 << 20,
    ) -> None:
        self._urls = [websocket_url(url) for url in coordinators]
        self._bases = dict(zip(self._urls, coordinators, strict=True))
        self._new_session = new_session
        self._session = new_session()
        self._runner = runner
        self._drain_grace_s = drain_grace_s
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._max_frame_bytes = max_frame_bytes
        self.connected = asyncio.Event()
        self.state: LinkState = "connecting"
        self.connected_url: str | None = None
        self.registration: Registered | None = None  # what the coordinator said last time
        self.last_error: str | None = None
        self.changed = asyncio.Event()  # set on every change of state (for the status file)

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set (then drain) or the coordinator refuses the node."""
        delays = self._delays()
        for url in cycle(self._urls):
            if stop.is_set():
                return
            self._set_state("connecting")
            try:
                served = await self._serve(url, stop)
            except FatalLinkError as exc:
                self.last_error = str(exc)
                self._set_state("refused")
                raise
            except (OSError, InvalidHandshake, InvalidURI, TimeoutError, ConnectionClosed,
                    ProtocolViolation, pydantic.ValidationError) as exc:
                log.warning("link to %s lost: %s", url, exc or type(exc).__name__)
                self.last_error = f"{url}: {exc or type(exc).__name__}"
                served = False
            finally:
                self.connected.clear()
                self.connected_url = None
                self._runner.cancel_all()
            if stop.is_set():
                return
            if served:
                delays = self._delays()
            self._set_state("waiting")
            delay = next(delays)
            log.info("reconnecting in %.1fs", delay)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await stop.wait()

    @property
    def connected_coordinator(self) -> str | None:
        """The coordinator connected to, as configured (not its websocket URL)."""
        return self._bases.get(self.connected_url) if self.connected_url else None

    def _delays(self) -> Iterator[float]:
        return backoff(self._backoff_initial_s, self._backoff_max_s)

    async def _serve(self, url: str, stop: asyncio.Event) -> bool:
        self._session = self._new_session()  # every connection authenticates afresh
        async with connect(
            url, max_size=self._max_frame_bytes, open_timeout=HANDSHAKE_TIMEOUT_S,
            ping_interval=10, ping_timeout=10, close_timeout=5,
            # Token frames are tens of bytes: deflating each costs both ends more CPU than the
            # bytes it saves, on the path every token takes.
            compression=None,
        ) as ws:
            await self._handshake(ws)
            self.connected_url = url
            self.last_error = None
            self.connected.set()
            self._set_state("connected")
            log.info("serving %s", url)
            receiving = asyncio.ensure_future(self._receive(ws))
            stopping = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if stopping.done():
                    await self._drain(ws)
                    return True
                receiving.result()
            finally:
                receiving.cancel()
                stopping.cancel()
            return True

    async def _handshake(self, ws: ClientConnection) -> None:
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
                challenge = decode_coordinator_message(await ws.recv())
                if not isinstance(challenge, Challenge):
                    raise ProtocolViolation("expected a challenge")
                await ws.send(encode(self._session.answer(challenge, datetime.now(UTC))))
                event = self._session.receive(decode_coordinator_message(await ws.recv()))
        except ConnectionClosed as exc:
            self._raise_if_fatal(exc)
            raise
        if not isinstance(event, Accepted):
            raise ProtocolViolation("expected registration")
        self.registration = event.registered

    async def _receive(self, ws: ClientConnection) -> None:
        async def send(message: WireModel) -> None:
            await ws.send(encode(message))

        try:
            async for frame in ws:
                event = self._session.receive(decode_coordinator_message(frame))
                if isinstance(event, RunJob):
                    self._runner.start(event.job, send)
                elif isinstance(event, ScoreJob):
                    self._runner.start(event.request, send)
                elif isinstance(event, CancelJob):
                    self._runner.cancel(event.job_id)
        except ConnectionClosed as exc:
            self._raise_if_fatal(exc)
            raise
        raise ConnectionError("coordinator closed the connection")

    async def _drain(self, ws: ClientConnection) -> None:
        self._set_state("draining")
        log.info("draining: finishing %d job(s)", self._runner.in_flight)
        await ws.send(encode(Draining()))
        await self._runner.drain(self._drain_grace_s)
        await ws.close()

    def _set_state(self, state: LinkState) -> None:
        self.state = state
        self.changed.set()

    @staticmethod
    def _raise_if_fatal(exc: ConnectionClosed) -> None:
        code = exc.rcvd.code if exc.rcvd is not None else None
        if code in FATAL_CLOSE_CODES:
            reason = exc.rcvd.reason if exc.rcvd is not None else ""
            raise FatalLinkError(f"{FATAL_CLOSE_CODES[code]}: {reason}") from exc
