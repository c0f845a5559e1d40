"""Running the coordinator's jobs on the engine, up to the node's declared slots."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from agent.engines.base import Engine, GeneratedToken, GenerationRequest, ScoringRequest
from agent.errors import ContextLengthExceeded, EngineError, RequestRejected
from protocol.chat import WireModel
from protocol.ids import JobId, ModelId
from protocol.messages import (
    FailureCode,
    Job,
    JobDone,
    JobFailed,
    ScoreRequest,
    TokenDelta,
    TokenScores,
)
from protocol.tool_turns import tool_turns

log = logging.getLogger(__name__)

Send = Callable[[WireModel], Coroutine[Any, Any, None]]


@dataclass
class WorkStats:
    jobs_done: int = 0
    jobs_failed: int = 0
    tokens_served: int = 0
    decode_tokens: int = 0  # tokens after each job's first, over...
    decode_s: float = 0.0  # ...the time from its first token to its end

    @property
    def measured_tok_s(self) -> float | None:
        """Generation speed per job on this machine, measured on the jobs it served."""
        if self.decode_tokens <= 0 or self.decode_s <= 0:
            return None
        return self.decode_tokens / self.decode_s


class JobRunner:
    """Starts, streams and cancels jobs; refuses what it cannot take rather than queueing it."""

    def __init__(
        self, engines: Mapping[ModelId, Engine], slots: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engines = engines  # one per model served; ``slots`` is shared between them
        self._clock = clock
        self.slots = slots
        self._running: dict[JobId, asyncio.Task[None]] = {}
        self.draining = False
        self.stats = WorkStats()

    @property
    def in_flight(self) -> int:
        return len(self._running)

    def start(self, job: Job | ScoreRequest, send: Send) -> None:
        """Run a generation, or score another node's answer, on a free slot."""
        refusal = self._refusal(job)
        if refusal is not None:
            code, message = refusal
            asyncio.get_running_loop().create_task(
                send(JobFailed(job_id=job.job_id, code=code, message=message))
            )
            return
        work = self._run(job, send) if isinstance(job, Job) else self._score(job, send)
        task = asyncio.get_running_loop().create_task(work)
        self._running[job.job_id] = task
        task.add_done_callback(lambda _: self._running.pop(job.job_id, None))

    def cancel(self, job_id: JobId) -> None:
        task = self._running.get(job_id)
        if task is not None:
            # A Cancel read in the same batch as its Job would otherwise reach the task before
            # its first step, outside _run's handlers, and the job would end without a word.
            # The task's first step is already queued, so this cancel lands after it.
            asyncio.get_running_loop().call_soon(task.cancel)

    def cancel_all(self) -> None:
        for task in list(self._running.values()):
            task.cancel()

    async def drain(self, grace_s: float) -> None:
        """Take no new jobs; give those running ``grace_s`` to finish, then cancel them."""
        self.draining = True
        tasks = list(self._running.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)

    def _refusal(self, job: Job | ScoreRequest) -> tuple[FailureCode, str] | None:
        if self.draining:
            return "draining", "the node is shutting down"
        if job.model not in self._engines:
            served = ", ".join(self._engines)
            return "unsupported_model", f"this node serves {served}, not {job.model}"
        if len(self._running) >= self.slots:
            return "busy", f"all {self.slots} slots are in use"
        if job.job_id in self._running:
            return "bad_request", "duplicate job id"
        return None

    async def _run(self, job: Job, send: Send) -> None:
        request = GenerationRequest(
            tool_turns(job.messages, job.tools), job.params, job.top_logprobs, job.continuation,
            job.fill_context, raw_prompt=job.raw_prompt,
        )
        first_token_at: float | None = None
        try:
            async with aclosing(self._engines[job.model].generate(request)) as events:
                async for event in events:
                    if isinstance(event, GeneratedToken):
                        if first_token_at is None:
                            first_token_at = self._clock()
                        logprobs = (event.logprob,) if event.logprob is not None else ()
                        await send(TokenDelta(
                            job_id=job.job_id, text=event.text, tokens=int(event.counted),
                            logprobs=logprobs,
                        ))
                    else:
                        self.stats.jobs_done += 1
                        self.stats.tokens_served += event.completion_tokens
                        if first_token_at is not None and event.completion_tokens > 1:
                            self.stats.decode_tokens += event.completion_tokens - 1
                            self.stats.decode_s += self._clock() - first_token_at
                        await send(JobDone(
                            job_id=job.job_id, finish_reason=event.finish_reason,
                            prompt_tokens=event.prompt_tokens,
                            completion_tokens=event.completion_tokens,
                        ))
        except asyncio.CancelledError:
            await _send_quietly(send, JobFailed(job_id=job.job_id, code="cancelled", message=""))
            raise
        except RequestRejected as exc:
            code: FailureCode = (
                "context_length" if isinstance(exc, ContextLengthExceeded) else "bad_request"
            )
            await _send_quietly(send, JobFailed(
                job_id=job.job_id, code=code, message=str(exc), param=exc.param
            ))
        except EngineError as exc:
            self.stats.jobs_failed += 1
            log.error("job %s failed: %s", job.job_id, exc)
            await _send_quietly(
                send, JobFailed(job_id=job.job_id, code="engine_error", message=str(exc)[:500])
            )


    async def _score(self, request: ScoreRequest, send: Send) -> None:
        scoring = ScoringRequest(
            messages=request.messages, text=request.continuation.text,
            token_ids=request.continuation.token_ids, prefix=request.prefix,
            top_logprobs=request.top_logprobs,
        )
        try:
            scores = await self._engines[request.model].score(scoring)
            await send(TokenScores(job_id=request.job_id, logprobs=scores))
        except asyncio.CancelledError:
            await _send_quietly(
                send, JobFailed(job_id=request.job_id, code="cancelled", message="")
            )
            raise
        except RequestRejected as exc:
            code: FailureCode = (
                "context_length" if isinstance(exc, ContextLengthExceeded) else "bad_request"
            )
            await _send_quietly(send, JobFailed(job_id=request.job_id, code=code, message=str(exc)))
        except EngineError as exc:
            log.error("scoring %s failed: %s", request.job_id, exc)
            await _send_quietly(send, JobFailed(
                job_id=request.job_id, code="engine_error", message=str(exc)[:500]
            ))


async def _send_quietly(send: Send, message: WireModel) -> None:
    try:
        await send(message)
    except Exception:  # the link is gone; the coordinator already treats the job as lost
        log.debug("could not report %s", message)
