"""``GET /v1/nodes/connect``: the websocket every node dials, and its receive loop.

The loop only moves frames: the protocol session decides, the hub routes job events to the
requests waiting on them, and the router learns who is live.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta

import base58
import pydantic
from aiohttp import WSCloseCode, WSMsgType, web

from coordinator.accounts.accounts import node_earnings_account
from coordinator.accounts.enrollment import (
    EnrollmentRefused,
    enroll,
    node_earned,
    operator_name,
    sweep_earnings,
)
from coordinator.accounts.identity import EnrollmentLimits
from coordinator.hub.live import LiveNode, delta_violation
from coordinator.hub.membership import Admitted, announce, depart
from coordinator.hub.needs import HUB_NEEDS, HubNeeds
from coordinator.limits.enforce import new_node_allowed
from coordinator.store.health import load_buckets
from coordinator.store.nodes import record_registration
from coordinator.store.removals import removal_reason
from protocol.close_codes import CloseCode
from protocol.messages import Register, Registered, TokenDelta, decode_node_message, encode
from protocol.session import CoordinatorSession, NodeDraining, NodeRegistered, ProtocolViolation

log = logging.getLogger(__name__)

REGISTER_TIMEOUT_S = 15.0
MAX_REASON_BYTES = 123  # a close frame's payload is 125 bytes, two of them the code
# Closes aiohttp's reader makes on its own, without a message.
AIOHTTP_CLOSE_REASONS: dict[int, str] = {
    WSCloseCode.MESSAGE_TOO_BIG: "frame exceeds max_frame_bytes",
    WSCloseCode.INVALID_TEXT: "text frame is not valid UTF-8",
    WSCloseCode.PROTOCOL_ERROR: "websocket protocol error",
}


def close_reason(text: str) -> bytes:
    """``text`` cut to fit a close frame, on a character boundary (the peer decodes UTF-8)."""
    return text.encode()[:MAX_REASON_BYTES].decode(errors="ignore").encode()


class NodeSocket(web.WebSocketResponse):
    """A node's websocket; every close carries a reason, including those aiohttp makes."""

    async def close(
        self, *, code: int = WSCloseCode.OK, message: bytes = b"", drain: bool = True
    ) -> bool:
        if not message and code in AIOHTTP_CLOSE_REASONS:
            message = AIOHTTP_CLOSE_REASONS[code].encode()
        return await super().close(code=code, message=message, drain=drain)


async def node_connect(request: web.Request) -> web.WebSocketResponse:
    services = request.app[HUB_NEEDS]
    if services.stopping.is_set():
        raise web.HTTPServiceUnavailable(text="coordinator restarting")
    settings = services.settings
    # No permessage-deflate: frames are small JSON, and a zlib context per connection would
    # cost ~300 KB of memory per idle node (and CPU on every token).
    ws = NodeSocket(
        heartbeat=settings.heartbeat_interval_s, max_msg_size=settings.max_frame_bytes,
        compress=False,
    )
    await ws.prepare(request)
    session = CoordinatorSession(
        domain=settings.domain,
        nonce=base58.b58encode(secrets.token_bytes(32)).decode(),
        opened_at=services.clock.now(),
        max_clock_skew=timedelta(seconds=settings.node_clock_skew_s),
    )
    await ws.send_str(encode(session.challenge()))
    try:
        node = await _register(ws, session, services, request)
    except TryLater as exc:
        log.info("node refused for now: %s", exc)
        await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=close_reason(str(exc)))
        return ws
    except ProtocolViolation as exc:
        log.info("node refused: %s", exc.reason[:200])
        await ws.close(code=CloseCode.REFUSED, message=close_reason(exc.reason))
        return ws
    except Exception:
        log.exception("registration failed")
        await ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"registration failed")
        return ws
    if node is None:
        return ws
    try:
        await _serve(ws, node, services)
    except Exception:
        log.exception("node %s: receive loop failed", node.node_id)
        await ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"coordinator error")
    finally:
        await depart(services, node, "node disconnected")
        log.info("node %s left", node.node_id)
    return ws


class TryLater(Exception):
    """A registration refused for now (a limit), not for good: the node retries later."""


async def _register(
    ws: web.WebSocketResponse, session: CoordinatorSession, services: HubNeeds,
    request: web.Request,
) -> LiveNode | None:
    """Verify the node's registration, admit it in the store, announce it: its live node, or
    None when it hung up first."""
    message = await _verify(ws, session, services)
    if message is None:
        return None
    now = services.clock.now()
    admitted, operator, earned = await _admit(services, request, message, now)
    node = LiveNode(
        node_id=message.node_id, register=message, session=session, send=ws.send_str,
        close=lambda code, reason: ws.close(code=code, message=reason.encode()),
        connected_at=now, payee_account_id=admitted.payee_account_id,
        first_seen=admitted.first_seen, model_switched_at=admitted.model_switched_at,
        operator=operator,
    )
    previous = announce(services, node, admitted, now)
    if previous is not None:
        services.hub.detach(previous, "node reconnected")
        await previous.close(CloseCode.REPLACED, "replaced by a newer connection")
    parked_until = await services.bus.park_of(message.node_id)  # by its previous replica
    if parked_until is not None:
        services.router.park(
            message.node_id, until=services.clock.monotonic() + parked_until - now.timestamp(),
            now=services.clock.monotonic(),
        )
    await ws.send_str(
        encode(Registered(node_id=message.node_id, operator=operator, earned=earned))
    )
    log.info("node %s joined serving %s", message.node_id, sorted(node.models))
    return node


async def _verify(
    ws: web.WebSocketResponse, session: CoordinatorSession, services: HubNeeds
) -> Register | None:
    """The node's signed registration, checked: its identity, not refused, catalogue weights."""
    try:
        frame = await ws.receive(timeout=REGISTER_TIMEOUT_S)
    except TimeoutError as exc:
        raise ProtocolViolation("no registration in time") from exc
    if frame.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
        return None
    if frame.type is not WSMsgType.TEXT:
        raise ProtocolViolation("expected a text frame")
    try:
        message = decode_node_message(frame.data)
    except pydantic.ValidationError as exc:
        raise ProtocolViolation("malformed registration") from exc
    if not isinstance(message, Register):
        raise ProtocolViolation("register first")
    event = session.receive(message, services.clock.now())
    assert isinstance(event, NodeRegistered)
    refusal = services.refused_nodes.get(message.node_id)
    if refusal is not None:  # e.g. removed for good by the points rules
        raise ProtocolViolation(refusal)
    for offer in message.models:
        if not services.catalogue.accepts_weights(offer.model, offer.weights_sha256):
            raise ProtocolViolation(f"weights do not match catalogue model {offer.model!r}")
    return message


async def _admit(
    services: HubNeeds, request: web.Request, message: Register, now: datetime
) -> tuple[Admitted, str | None, int]:
    """Record the registration in one transaction: not removed, within the identity limits,
    enrolled if it brings a token. Returns what membership needs, the operator's name and what
    the node has earned so far."""
    limits = EnrollmentLimits(
        new_nodes_per_day=services.settings.identity.new_nodes_per_day_per_operator,
        offender_window=timedelta(days=services.settings.points.constants.offender_window_days),
    )
    async with services.database.session() as db, db.begin():
        removed = await removal_reason(db, message.node_id)  # on any replica, at once
        if removed is not None:
            raise ProtocolViolation(removed)
        row = await record_registration(db, message, now)
        if row.first_seen == now and not await new_node_allowed(request):  # rolls it back
            raise TryLater("too many new node identities from this network: retry later")
        if message.enrollment_token is not None:
            try:
                await enroll(db, row, message.enrollment_token, now, limits)
            except EnrollmentRefused as exc:  # rolls the whole registration back
                raise ProtocolViolation(exc.reason) from exc
        if row.operator_account_id is None and row.earnings_account_id is None:
            row.earnings_account_id = await node_earnings_account(db, message.node_id, now)
        # Pay collected before enrollment, or settled to the old payee since, joins the operator.
        await sweep_earnings(db, row, now)
        payee = row.operator_account_id or row.earnings_account_id
        assert payee is not None
        operator = await operator_name(db, row.operator_account_id)
        earned = await node_earned(db, message.node_id)
        window_start = now - timedelta(days=services.settings.routing.health_window_days)
        admitted = Admitted(
            payee_account_id=payee, first_seen=row.first_seen,
            model_switched_at=row.model_switched_at,
            health=await load_buckets(db, message.node_id, int(window_start.timestamp())),
            slots=message.slots, declared_tok_s=message.declared_tok_s, examined=True,
            enrolled=row.operator_account_id is not None,
        )
        return admitted, operator, earned


async def _serve(ws: web.WebSocketResponse, node: LiveNode, services: HubNeeds) -> None:
    async for frame in ws:
        if frame.type is not WSMsgType.TEXT:
            if frame.type is WSMsgType.BINARY:
                await ws.close(code=WSCloseCode.UNSUPPORTED_DATA, message=b"text frames only")
            break
        try:
            message = decode_node_message(frame.data)
            if isinstance(message, TokenDelta) and (broken := delta_violation(message)):
                raise ProtocolViolation(broken)
            event = node.session.receive(message, services.clock.now())
        except (pydantic.ValidationError, ProtocolViolation) as exc:
            reason = exc.reason if isinstance(exc, ProtocolViolation) else "malformed message"
            log.warning("node %s closed: %s", node.node_id, reason[:200])
            await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=close_reason(reason))
            break
        if event is None:
            continue
        if isinstance(event, NodeDraining):
            node.draining = True
            services.router.set_draining(node.node_id, now=services.clock.monotonic())
            continue
        if isinstance(event, NodeRegistered):  # pragma: no cover - the session forbids it
            continue
        await services.hub.deliver_waiting(node, event)
