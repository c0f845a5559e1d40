"""The node session from both ends, fed message by message: no sockets, no clocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import MIN_PROTOCOL_VERSION, PROTOCOL_VERSION
from protocol.auth import challenge_text, node_id_of, sign_text
from protocol.chat import ChatMessage, SamplingParams, TokenLogprob
from protocol.ids import JobId, ModelId
from protocol.messages import (
    Cancel,
    Challenge,
    Draining,
    Hardware,
    Job,
    JobDone,
    JobFailed,
    ModelOffer,
    Registered,
    ScoredContinuation,
    ScoreRequest,
    TokenDelta,
    TokenScores,
    decode_coordinator_message,
    decode_node_message,
    encode,
)
from protocol.session import (
    Accepted,
    AgentSession,
    CancelJob,
    CoordinatorSession,
    NodeDraining,
    NodeRegistered,
    NodeState,
    Offer,
    ProtocolViolation,
    RunJob,
    ScoreJob,
    isoformat_utc,
)

DOMAIN = "koretex.test"
NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
MODEL = ModelId("gemma-3-270m")
OFFER = Offer(
    agent_version="0.1.0",
    engine="llama.cpp",
    models=(ModelOffer(model=MODEL, weights_sha256="ab" * 32, context_length=2048),),
    slots=2,
    hardware=Hardware(system="Linux", machine="x86_64", chip="test", cores=2, memory_bytes=1 << 30),
)


def signing_key(seed: int) -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(seed.to_bytes(32, "big"))


def coordinator(nonce: str = "nonce-1") -> CoordinatorSession:
    return CoordinatorSession(domain=DOMAIN, nonce=nonce, opened_at=NOW)


def job(job_id: str = "job-1", max_tokens: int = 8) -> Job:
    return Job(
        job_id=JobId(job_id), model=MODEL,
        messages=(ChatMessage(role="user", content="Hi"),),
        params=SamplingParams(max_tokens=max_tokens),
    )


def delta(job_id: str = "job-1", text: str = "Hel") -> TokenDelta:
    return TokenDelta(job_id=JobId(job_id), text=text, tokens=1)


def done(job_id: str = "job-1") -> JobDone:
    return JobDone(job_id=JobId(job_id), finish_reason="stop", prompt_tokens=5, completion_tokens=2)


def failed(job_id: str = "job-1") -> JobFailed:
    return JobFailed(job_id=JobId(job_id), code="cancelled", message="")


def connected() -> tuple[CoordinatorSession, AgentSession]:
    """Both ends after a successful handshake."""
    hub = coordinator()
    agent = AgentSession(signing_key(1), OFFER)
    event = hub.receive(agent.answer(hub.challenge(), NOW), NOW)
    assert isinstance(event, NodeRegistered)
    assert hub.node_id is not None
    assert isinstance(agent.receive(Registered(node_id=hub.node_id)), Accepted)
    return hub, agent


def violation(hub: CoordinatorSession, message: object, now: datetime = NOW) -> str:
    with pytest.raises(ProtocolViolation) as raised:
        hub.receive(message, now)  # type: ignore[arg-type]
    return raised.value.reason


# --- the handshake -----------------------------------------------------------------------------


def test_an_answered_challenge_registers_the_node() -> None:
    hub = coordinator()
    agent = AgentSession(signing_key(1), OFFER)
    challenge = hub.challenge()
    assert challenge.protocol_version == PROTOCOL_VERSION
    assert (challenge.domain, challenge.nonce) == (DOMAIN, "nonce-1")
    assert challenge.server_time == "2025-03-01T12:00:00Z"

    register = agent.answer(challenge, NOW)
    assert register.node_id == node_id_of(signing_key(1)) == agent.node_id
    assert register.models == OFFER.models
    assert register.slots == 2
    assert register.issued_at == "2025-03-01T12:00:00Z"

    event = hub.receive(register, NOW + timedelta(seconds=2))
    assert event == NodeRegistered(register)
    assert hub.state is NodeState.ACTIVE
    assert hub.node_id == agent.node_id

    accepted = agent.receive(Registered(node_id=agent.node_id, operator="wallet"))
    assert isinstance(accepted, Accepted)
    assert accepted.registered.operator == "wallet"
    assert agent.registered


def test_jobs_and_cancels_reach_the_agent_once_registered() -> None:
    hub, agent = connected()
    sent = hub.assign(job())
    assert agent.receive(sent) == RunJob(sent)
    cancel = hub.cancel(JobId("job-1"))
    assert cancel == Cancel(job_id=JobId("job-1"))
    assert agent.receive(cancel) == CancelJob(JobId("job-1"))


def test_a_register_signed_by_another_key_is_refused() -> None:
    hub = coordinator()
    honest = AgentSession(signing_key(1), OFFER).answer(hub.challenge(), NOW)
    text = challenge_text(
        domain=DOMAIN, nonce="nonce-1", node_id=honest.node_id, issued_at=honest.issued_at
    )
    forged = honest.model_copy(update={"signature": sign_text(signing_key(2), text)})
    assert violation(hub, forged) == "bad signature"
    assert hub.state is NodeState.AWAITING_REGISTER
    assert hub.node_id is None


def test_a_register_claiming_another_node_id_is_refused() -> None:
    hub = coordinator()
    own = AgentSession(signing_key(2), OFFER).answer(hub.challenge(), NOW)
    swapped = own.model_copy(update={"node_id": node_id_of(signing_key(1))})
    assert violation(hub, swapped) == "bad signature"


def test_a_register_with_a_changed_issued_at_is_refused() -> None:
    hub = coordinator()
    register = AgentSession(signing_key(1), OFFER).answer(hub.challenge(), NOW)
    moved = register.model_copy(update={"issued_at": "2025-03-01T12:00:01Z"})
    assert violation(hub, moved) == "bad signature"


@settings(deadline=None)
@given(node_id=st.text(max_size=60), signature=st.text(max_size=100))
def test_garbage_keys_and_signatures_are_bad_signatures_not_crashes(
    node_id: str, signature: str
) -> None:
    hub = coordinator()
    register = AgentSession(signing_key(1), OFFER).answer(hub.challenge(), NOW)
    garbage = register.model_copy(update={"node_id": node_id, "signature": signature})
    assert violation(hub, garbage) == "bad signature"


def test_a_register_for_another_domain_is_refused() -> None:
    hub = coordinator()
    elsewhere = Challenge(
        protocol_version=PROTOCOL_VERSION, domain="evil.test", nonce="nonce-1",
        server_time=isoformat_utc(NOW),
    )
    register = AgentSession(signing_key(1), OFFER).answer(elsewhere, NOW)
    assert violation(hub, register) == "bad signature"


def test_a_register_replayed_on_another_connection_is_refused() -> None:
    first = coordinator("nonce-1")
    register = AgentSession(signing_key(1), OFFER).answer(first.challenge(), NOW)
    assert isinstance(first.receive(register, NOW), NodeRegistered)
    replay_target = coordinator("nonce-2")
    assert violation(replay_target, register) == "stale or reused nonce"
    assert replay_target.state is NodeState.AWAITING_REGISTER


@settings(deadline=None)
@given(st.integers(-900, 900))
def test_issued_at_is_accepted_only_within_the_clock_skew(offset_s: int) -> None:
    hub = coordinator()
    issued = NOW + timedelta(seconds=offset_s)
    register = AgentSession(signing_key(1), OFFER).answer(hub.challenge(), issued)
    if abs(offset_s) <= hub.max_clock_skew.total_seconds():
        assert isinstance(hub.receive(register, NOW), NodeRegistered)
    else:
        assert violation(hub, register) == "stale signature"


def test_a_stale_signature_is_refused_just_beyond_the_skew() -> None:
    hub = coordinator()
    register = AgentSession(signing_key(1), OFFER).answer(hub.challenge(), NOW)
    late = NOW + hub.max_clock_skew + timedelta(seconds=1)
    assert violation(hub, register, late) == "stale signature"
    assert isinstance(hub.receive(register, NOW + hub.max_clock_skew), NodeRegistered)


@pytest.mark.parametrize(
    ("issued_at", "reason"),
    [
        ("yesterday", "issued_at is not an ISO 8601 time"),
        ("2025-03-01T12:00:00", "stale signature"),  # no time zone: not a moment in time
    ],
)
def test_an_unreadable_issued_at_is_refused(issued_at: str, reason: str) -> None:
    hub = coordinator()
    key = signing_key(1)
    text = challenge_text(
        domain=DOMAIN, nonce="nonce-1", node_id=node_id_of(key), issued_at=issued_at
    )
    register = AgentSession(key, OFFER).answer(hub.challenge(), NOW).model_copy(
        update={"issued_at": issued_at, "signature": sign_text(key, text)}
    )
    assert violation(hub, register) == reason


@pytest.mark.parametrize("version", [MIN_PROTOCOL_VERSION - 1, PROTOCOL_VERSION + 1])
def test_another_protocol_version_is_refused(version: int) -> None:
    hub = coordinator()
    register = AgentSession(signing_key(1), OFFER).answer(hub.challenge(), NOW)
    assert violation(hub, register.model_copy(update={"protocol_version": version})) == (
        f"unsupported protocol version {version}"
    )


def test_registering_twice_is_refused() -> None:
    hub = coordinator()
    register = AgentSession(signing_key(1), OFFER).answer(hub.challenge(), NOW)
    hub.receive(register, NOW)
    assert violation(hub, register) == "already registered"
    assert hub.state is NodeState.ACTIVE


@pytest.mark.parametrize("message", [delta(), done(), failed(), Draining()])
def test_nothing_but_register_is_accepted_first(message: object) -> None:
    hub = coordinator()
    assert violation(hub, message) == "register first"
    assert hub.state is NodeState.AWAITING_REGISTER


def test_no_job_is_assigned_before_registration() -> None:
    with pytest.raises(ProtocolViolation):
        coordinator().assign(job())


def test_the_agent_refuses_what_comes_out_of_order() -> None:
    agent = AgentSession(signing_key(1), OFFER)
    with pytest.raises(ProtocolViolation, match="job before registration"):
        agent.receive(job())
    with pytest.raises(ProtocolViolation, match="job before registration"):
        agent.receive(Cancel(job_id=JobId("job-1")))
    with pytest.raises(ProtocolViolation, match="another node id"):
        agent.receive(Registered(node_id=node_id_of(signing_key(2))))
    assert not agent.registered

    hub, agent = connected()
    with pytest.raises(ProtocolViolation, match="unexpected challenge"):
        agent.receive(hub.challenge())
    with pytest.raises(ProtocolViolation, match="challenge after registration"):
        agent.answer(hub.challenge(), NOW)


# --- jobs --------------------------------------------------------------------------------------


@pytest.mark.parametrize("message", [delta("job-2"), done("job-2"), failed("job-2")])
def test_events_for_a_job_the_node_does_not_own_are_violations(message: object) -> None:
    hub, _ = connected()
    hub.assign(job("job-1"))
    assert violation(hub, message) == "job 'job-2' is not this node's"


def test_deltas_flow_until_done_releases_the_job() -> None:
    hub, _ = connected()
    hub.assign(job())
    assert hub.receive(delta(text="Hel"), NOW) == delta(text="Hel")
    assert hub.receive(delta(text="lo"), NOW) == delta(text="lo")
    assert hub.receive(done(), NOW) == done()
    assert hub.owned_jobs == set()
    assert violation(hub, delta()) == "job 'job-1' is not this node's"
    assert violation(hub, done()) == "job 'job-1' is not this node's"


def test_failure_releases_the_job_too() -> None:
    hub, _ = connected()
    hub.assign(job())
    assert hub.receive(failed(), NOW) == failed()
    assert violation(hub, delta()) == "job 'job-1' is not this node's"


@pytest.mark.parametrize("final", [failed(), done()])
def test_frames_of_a_cancelled_job_are_ignored_until_its_end(final: JobDone | JobFailed) -> None:
    hub, _ = connected()
    hub.assign(job("job-1"))
    hub.assign(job("job-2"))
    assert hub.cancel(JobId("job-1")) == Cancel(job_id=JobId("job-1"))
    assert hub.owned_jobs == {JobId("job-2")}

    assert hub.receive(delta("job-1"), NOW) is None
    assert hub.receive(delta("job-1"), NOW) is None
    assert hub.receive(delta("job-2"), NOW) == delta("job-2")  # the other job is unaffected
    assert hub.receive(final, NOW) is None
    assert hub.cancelled_jobs == set()
    assert violation(hub, delta("job-1")) == "job 'job-1' is not this node's"


def test_cancelling_a_job_that_is_not_running_sends_nothing() -> None:
    hub, _ = connected()
    assert hub.cancel(JobId("never-sent")) is None
    hub.assign(job())
    hub.receive(done(), NOW)
    assert hub.cancel(JobId("job-1")) is None
    assert hub.cancelled_jobs == set()


def test_a_draining_node_finishes_its_jobs_but_gets_no_new_ones() -> None:
    hub, _ = connected()
    hub.assign(job("job-1"))
    assert hub.receive(Draining(), NOW) == NodeDraining()
    assert hub.state is NodeState.DRAINING
    with pytest.raises(ProtocolViolation, match="not taking jobs"):
        hub.assign(job("job-2"))
    assert hub.receive(delta("job-1"), NOW) == delta("job-1")
    assert hub.receive(done("job-1"), NOW) == done("job-1")


# --- forged work ---------------------------------------------------------------------------------


@given(st.lists(st.integers(0, 5), min_size=1, max_size=10))
def test_a_node_cannot_report_more_tokens_than_the_job_allows(counts: list[int]) -> None:
    hub, _ = connected()
    hub.assign(job())  # max_tokens=8
    sent = 0
    for count in counts:
        message = TokenDelta(job_id=JobId("job-1"), text="x" * min(count, 1), tokens=count)
        if sent + count > 8:
            assert "more tokens than max_tokens" in violation(hub, message)
            return
        assert hub.receive(message, NOW) == message
        sent += count


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 300)), min_size=1, max_size=12))
def test_text_is_paid_for_by_the_jobs_tokens_so_far(deltas: list[tuple[int, int]]) -> None:
    hub, _ = connected()
    hub.assign(job(max_tokens=1000))
    tokens = text = 0
    for count, size in deltas:
        message = TokenDelta(job_id=JobId("job-1"), text="x" * size, tokens=count)
        if text + size > 64 * (tokens + count):
            assert "bytes per token so far" in violation(hub, message)
            return
        assert hub.receive(message, NOW) == message
        tokens, text = tokens + count, text + size


def test_text_held_back_may_come_last_in_a_delta_of_no_tokens() -> None:
    hub, _ = connected()
    hub.assign(job())
    first = TokenDelta(job_id=JobId("job-1"), text="a", tokens=2)
    tail = TokenDelta(job_id=JobId("job-1"), text="\N{REPLACEMENT CHARACTER}bl", tokens=0)
    assert hub.receive(first, NOW) == first
    assert hub.receive(tail, NOW) == tail
    assert "bytes per token" in violation(
        hub, TokenDelta(job_id=JobId("job-1"), text="z" * 200, tokens=0)
    )


def test_a_finished_job_takes_no_more_tokens_and_its_budget_is_gone() -> None:
    hub, _ = connected()
    hub.assign(job())
    hub.receive(done(), NOW)
    assert hub.token_budget == {} and hub.text_room == {}
    assert "not this node's" in violation(hub, delta())


# --- re-scoring (protocol version 2) -----------------------------------------------------------


def score_request(job_id: str = "score-1") -> ScoreRequest:
    return ScoreRequest(
        job_id=JobId(job_id), model=MODEL, messages=(ChatMessage(role="user", content="Hi"),),
        continuation=ScoredContinuation(text="Hello", token_ids=(9259,)), top_logprobs=5,
    )


def test_a_scoring_reaches_the_agent_and_its_scores_release_it() -> None:
    hub, agent = connected()
    sent = hub.assign(score_request())
    assert agent.receive(sent) == ScoreJob(score_request())
    scores = TokenScores(
        job_id=JobId("score-1"),
        logprobs=(TokenLogprob(token_id=9259, token="Hello", logprob=-0.5),),
    )
    assert hub.receive(scores, NOW) == scores
    assert hub.owned_jobs == set()
    assert violation(hub, scores) == "job 'score-1' is not this node's"


def test_a_scoring_may_fail_like_a_job() -> None:
    hub, _ = connected()
    hub.assign(score_request())
    assert hub.receive(failed("score-1"), NOW) == failed("score-1")
    assert hub.owned_jobs == set()


def test_scoring_messages_survive_the_wire() -> None:
    request = score_request().model_copy(
        update={"continuation": ScoredContinuation(text="Hello")}
    )
    assert decode_coordinator_message(encode(request)) == request
    scores = TokenScores(job_id=JobId("s"), logprobs=())
    assert decode_node_message(encode(scores)) == scores


def test_nodes_of_the_previous_version_still_register() -> None:
    hub = coordinator()
    register = AgentSession(signing_key(1), OFFER).answer(hub.challenge(), NOW)
    assert MIN_PROTOCOL_VERSION < PROTOCOL_VERSION
    old = register.model_copy(update={"protocol_version": MIN_PROTOCOL_VERSION})
    assert hub.receive(old, NOW) == NodeRegistered(old)
