"""Sans-I/O state machines for both ends of the node websocket.

The websocket loops parse frames, feed the resulting messages in here, and carry out what comes
back; nothing here awaits, reads a clock or touches a socket, so every rule of the conversation is
testable by feeding messages in.
"""

from __future__ import annotations

import enum
import hmac
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import nacl.signing

from protocol import MIN_PROTOCOL_VERSION, PROTOCOL_VERSION
from protocol.auth import challenge_text, node_id_of, sign_text, verify_text
from protocol.ids import JobId, NodeId
from protocol.messages import (
    Cancel,
    Challenge,
    CoordinatorMessage,
    Draining,
    Hardware,
    Job,
    JobDone,
    JobFailed,
    ModelOffer,
    NodeMessage,
    Register,
    Registered,
    ScoreRequest,
    TokenDelta,
    TokenScores,
)


class ProtocolViolation(Exception):
    """The peer broke the protocol; the connection must be closed with ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def isoformat_utc(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class NodeState(enum.Enum):
    AWAITING_REGISTER = "awaiting_register"
    ACTIVE = "active"
    DRAINING = "draining"


@dataclass(frozen=True, slots=True)
class NodeRegistered:
    register: Register


@dataclass(frozen=True, slots=True)
class NodeDraining:
    pass


MAX_TEXT_BYTES_PER_TOKEN = 64
"""The most text a token pays for, on average over a job so far: far above what tokens carry
(a rare long piece, such as SmolLM2's run of 80 ``#``, fits among shorter ones), low enough that
a node cannot stream text it was not paid for. Counted over the job, text a generation held back
(a character split across tokens, a possible stop string) may come in a last delta of no
tokens."""

JobEvent = TokenDelta | JobDone | JobFailed | TokenScores
CoordinatorSideEvent = NodeRegistered | NodeDraining | JobEvent


@dataclass
class CoordinatorSession:
    """The coordinator's view of one node connection."""

    domain: str
    nonce: str
    opened_at: datetime
    max_clock_skew: timedelta = timedelta(minutes=5)
    state: NodeState = NodeState.AWAITING_REGISTER
    node_id: NodeId | None = None
    owned_jobs: set[JobId] = field(default_factory=set)
    cancelled_jobs: set[JobId] = field(default_factory=set)
    token_budget: dict[JobId, int] = field(default_factory=dict)  # tokens a job may still send
    text_room: dict[JobId, int] = field(default_factory=dict)  # bytes its tokens paid for, unsent

    def challenge(self) -> Challenge:
        return Challenge(
            protocol_version=PROTOCOL_VERSION,
            domain=self.domain,
            nonce=self.nonce,
            server_time=isoformat_utc(self.opened_at),
        )

    def receive(self, message: NodeMessage, now: datetime) -> CoordinatorSideEvent | None:
        """Digest one message from the node; raises :class:`ProtocolViolation`."""
        if isinstance(message, Register):
            return self._register(message, now)
        if self.state is NodeState.AWAITING_REGISTER:
            raise ProtocolViolation("register first")
        if isinstance(message, Draining):
            self.state = NodeState.DRAINING
            return NodeDraining()
        return self._job_event(message)

    def assign(self, job: Job | ScoreRequest) -> Job | ScoreRequest:
        """Record that ``job`` (a generation or a scoring) is sent to this node; returns it."""
        if self.state is not NodeState.ACTIVE:
            raise ProtocolViolation("node is not taking jobs")
        self.owned_jobs.add(job.job_id)
        # A scoring answers with scores, never tokens: its budget is zero.
        self.token_budget[job.job_id] = job.params.max_tokens if isinstance(job, Job) else 0
        self.text_room[job.job_id] = 0
        return job

    def cancel(self, job_id: JobId) -> Cancel | None:
        """The cancel message to send, if the job is still running on this node."""
        if job_id not in self.owned_jobs:
            return None
        self.owned_jobs.discard(job_id)
        self.token_budget.pop(job_id, None)
        self.text_room.pop(job_id, None)
        self.cancelled_jobs.add(job_id)
        return Cancel(job_id=job_id)

    def _register(self, message: Register, now: datetime) -> NodeRegistered:
        if self.state is not NodeState.AWAITING_REGISTER:
            raise ProtocolViolation("already registered")
        if not MIN_PROTOCOL_VERSION <= message.protocol_version <= PROTOCOL_VERSION:
            raise ProtocolViolation(f"unsupported protocol version {message.protocol_version}")
        if not hmac.compare_digest(message.nonce.encode(), self.nonce.encode()):
            raise ProtocolViolation("stale or reused nonce")
        try:
            issued_at = parse_utc(message.issued_at)
        except ValueError as exc:
            raise ProtocolViolation("issued_at is not an ISO 8601 time") from exc
        if issued_at.tzinfo is None or abs(now - issued_at) > self.max_clock_skew:
            raise ProtocolViolation("stale signature")
        text = challenge_text(
            domain=self.domain, nonce=self.nonce, node_id=message.node_id,
            issued_at=message.issued_at,
        )
        if not verify_text(message.node_id, text, message.signature):
            raise ProtocolViolation("bad signature")
        self.state = NodeState.ACTIVE
        self.node_id = message.node_id
        return NodeRegistered(message)

    def _job_event(self, message: JobEvent) -> JobEvent | None:
        job_id = message.job_id
        if job_id in self.cancelled_jobs:
            # Frames already in flight when the cancel went out; the job's end clears it.
            if not isinstance(message, TokenDelta):
                self.cancelled_jobs.discard(job_id)
            return None
        if job_id not in self.owned_jobs:
            raise ProtocolViolation(f"job {job_id[:64]!r} is not this node's")
        if isinstance(message, TokenDelta):
            # Pay follows reported tokens, so a node may not report more than it was asked for.
            left = self.token_budget.get(job_id, 0) - message.tokens
            if left < 0:
                raise ProtocolViolation(f"job {job_id[:64]!r} sent more tokens than max_tokens")
            self.token_budget[job_id] = left
            # Text is paid for by tokens: at most MAX_TEXT_BYTES_PER_TOKEN bytes for each token
            # so far (a last zero-token delta may release text its tokens held back).
            room = self.text_room.get(job_id, 0) + MAX_TEXT_BYTES_PER_TOKEN * message.tokens
            room -= len(message.text.encode())
            if room < 0:
                raise ProtocolViolation(
                    f"job {job_id[:64]!r}: delta text past {MAX_TEXT_BYTES_PER_TOKEN} bytes per "
                    "token so far"
                )
            self.text_room[job_id] = room
        else:
            self.owned_jobs.discard(job_id)
            self.token_budget.pop(job_id, None)
            self.text_room.pop(job_id, None)
        return message


@dataclass(frozen=True, slots=True)
class RunJob:
    job: Job


@dataclass(frozen=True, slots=True)
class ScoreJob:
    request: ScoreRequest


@dataclass(frozen=True, slots=True)
class CancelJob:
    job_id: JobId


@dataclass(frozen=True, slots=True)
class Accepted:
    registered: Registered


AgentSideEvent = RunJob | ScoreJob | CancelJob | Accepted


@dataclass(frozen=True, slots=True)
class Offer:
    """What a node offers when it registers."""

    agent_version: str
    engine: str
    models: tuple[ModelOffer, ...]
    slots: int
    hardware: Hardware
    declared_tok_s: float | None = None
    enrollment_token: str | None = None


@dataclass
class AgentSession:
    """The agent's side of one connection: answer the challenge, then take jobs."""

    signing_key: nacl.signing.SigningKey
    offer: Offer
    registered: bool = False

    @property
    def node_id(self) -> NodeId:
        return node_id_of(self.signing_key)

    def answer(self, challenge: Challenge, now: datetime) -> Register:
        if self.registered:
            raise ProtocolViolation("challenge after registration")
        issued_at = isoformat_utc(now)
        text = challenge_text(
            domain=challenge.domain, nonce=challenge.nonce, node_id=self.node_id,
            issued_at=issued_at,
        )
        return Register(
            protocol_version=PROTOCOL_VERSION,
            node_id=self.node_id,
            nonce=challenge.nonce,
            issued_at=issued_at,
            signature=sign_text(self.signing_key, text),
            agent_version=self.offer.agent_version,
            engine=self.offer.engine,
            models=self.offer.models,
            slots=self.offer.slots,
            declared_tok_s=self.offer.declared_tok_s,
            hardware=self.offer.hardware,
            enrollment_token=self.offer.enrollment_token,
        )

    def receive(self, message: CoordinatorMessage) -> AgentSideEvent:
        if isinstance(message, Challenge):
            raise ProtocolViolation("unexpected challenge")
        if isinstance(message, Registered):
            if message.node_id != self.node_id:
                raise ProtocolViolation("registered under another node id")
            self.registered = True
            return Accepted(message)
        if not self.registered:
            raise ProtocolViolation("job before registration")
        if isinstance(message, Job):
            return RunJob(message)
        if isinstance(message, ScoreRequest):
            return ScoreJob(message)
        return CancelJob(message.job_id)
