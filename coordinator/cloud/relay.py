"""A cloud node's link: the hub sends it jobs as it would a websocket; it runs them upstream.

The relay stands where an agent's websocket stands. ``send`` takes the same frames the hub sends
an agent (a ``Job`` or a ``Cancel``); each job becomes one streaming request to the upstream over
a pooled client session (at most the declared concurrency of connections), and its events are fed
through the node's protocol session into the hub, exactly as ``hub.connect`` feeds an agent's.
The upstream token is opened from its sealed form for each request and held nowhere else.
"""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import suppress
from typing import Any

import aiohttp

from coordinator.clock import Clock
from coordinator.cloud.addresses import upstream_connector
from coordinator.cloud.sealing import TokenSealer
from coordinator.cloud.upstream import (
    CannotResume,
    JobEvent,
    SseDecoder,
    SseTooLarge,
    StreamTranslator,
    chat_url,
    estimate_prompt_tokens,
    failure_for_status,
    request_body,
)
from coordinator.hub.live import LiveNode, NodeHub
from coordinator.settings.cloud import CloudSettings
from protocol.ids import JobId
from protocol.messages import (
    Cancel,
    Job,
    JobDone,
    JobFailed,
    TokenDelta,
    decode_coordinator_message,
)
from protocol.session import ProtocolViolation

log = logging.getLogger(__name__)

ERROR_BODY_BYTES = 8192


class AnswerCheck:
    """An upstream told to follow a JSON schema is held to it: an answer that ends without
    validating is the upstream's failure, not an answer (its deltas are counted as they pass)."""

    def __init__(self, schema: dict[str, Any] | None) -> None:
        self._schema = schema
        self._text: list[str] = []

    def events(self, events: list[JobEvent]) -> list[JobEvent]:
        if self._schema is None:
            return events
        checked: list[JobEvent] = []
        for event in events:
            if isinstance(event, TokenDelta):
                self._text.append(event.text)
            elif isinstance(event, JobDone) and event.finish_reason == "stop":
                problem = self._problem("".join(self._text))
                if problem is not None:
                    event = JobFailed(
                        job_id=event.job_id, code="engine_error",
                        message=f"the upstream's answer broke the requested schema: {problem}",
                    )
            checked.append(event)
        return checked

    def _problem(self, text: str) -> str | None:
        import jsonschema

        try:
            jsonschema.validate(json.loads(text), self._schema or {})
        except json.JSONDecodeError as exc:
            return f"not JSON ({exc.msg})"
        except jsonschema.ValidationError as exc:
            return str(exc.message)[:200]
        return None


class CloudRelay:
    """Runs one cloud node's jobs against its upstream."""

    def __init__(
        self, *, base_url: str, upstream_model: str, resume: bool, concurrency: int,
        sealed_token: bytes, sealer: TokenSealer, settings: CloudSettings, hub: NodeHub,
        clock: Clock,
    ) -> None:
        self._url = chat_url(base_url)
        self._upstream_model = upstream_model
        self._resume = resume
        self._sealed_token = sealed_token
        self._sealer = sealer
        self._settings = settings
        self._hub = hub
        self._clock = clock
        self._http = aiohttp.ClientSession(
            connector=upstream_connector(concurrency, settings.allow_private_upstreams),
            timeout=aiohttp.ClientTimeout(total=None, connect=settings.connect_timeout_s),
        )
        self._jobs: dict[JobId, asyncio.Task[None]] = {}
        self.node: LiveNode | None = None
        self.closed = False

    @property
    def connection_limit(self) -> int:
        """Connections this relay may hold open to its upstream: the declared concurrency."""
        connector = self._http.connector
        return 0 if connector is None else connector.limit

    @property
    def jobs_running(self) -> int:
        return len(self._jobs)

    async def send(self, frame: str) -> None:
        """Take a frame the hub sends this node: start a job or cancel one."""
        if self.closed:
            raise ConnectionError("cloud node is offline")
        message = decode_coordinator_message(frame)
        if isinstance(message, Job):
            task = asyncio.create_task(self._run(message), name=f"cloud-job-{message.job_id}")
            self._jobs[message.job_id] = task
            task.add_done_callback(lambda _: self._forget(message.job_id))
        elif isinstance(message, Cancel):
            running = self._jobs.pop(message.job_id, None)
            if running is not None:
                running.cancel()  # leaving the response's context closes the upstream request
            # The session keeps a cancelled job until its end arrives; this is that end.
            self._feed(JobFailed(job_id=message.job_id, code="cancelled", message="cancelled"))

    def _forget(self, job_id: JobId) -> None:
        self._jobs.pop(job_id, None)

    async def retire(self, grace_s: float) -> None:
        """Finish the jobs already running (up to ``grace_s``), then close.

        Used when the node is reconfigured: a new relay takes new jobs at once, while answers
        already streaming from the old settings are not cut short.
        """
        try:
            running = list(self._jobs.values())
            if running:
                await asyncio.wait(running, timeout=grace_s)
        finally:
            await self.close(1000, "cloud node reconfigured")

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Stop every job and close the connection pool; the node is offline after this."""
        if self.closed:
            return
        self.closed = True
        tasks = list(self._jobs.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.node is not None:  # requests waiting on its jobs move on at once
            self._hub.detach(self.node, reason or "cloud node offline")
        await self._http.close()

    async def _run(self, job: Job) -> None:
        try:
            body = request_body(job, self._upstream_model, resume=self._resume)
        except CannotResume as exc:
            # Neutral: the gateway hands the resumption to a node that can continue it.
            self._feed(JobFailed(job_id=job.job_id, code="unsupported_model", message=str(exc)))
            return
        token = self._sealer.open(self._sealed_token)
        translator = StreamTranslator(
            job.job_id, estimate_prompt_tokens(job.messages), secret=token
        )
        try:
            await self._stream(body, token, translator, AnswerCheck(job.params.json_schema))
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            log.info("cloud job %s: upstream timed out", job.job_id)
            self._fail(job, "cloud upstream timed out")
        except (aiohttp.ClientError, OSError) as exc:
            log.info("cloud job %s: upstream unreachable (%s)", job.job_id, type(exc).__name__)
            self._fail(job, f"cloud upstream unreachable ({type(exc).__name__})")
        except SseTooLarge as exc:  # the upstream's fault: ends its job, the relay stays bounded
            log.info("cloud job %s: %s", job.job_id, exc)
            self._fail(job, str(exc))
        except Exception:  # a relay bug must end the job, not leave the consumer waiting
            log.exception("cloud job %s failed in the relay", job.job_id)
            self._fail(job, "cloud relay failed")

    async def _stream(
        self, body: dict[str, Any], token: str, translator: StreamTranslator, check: AnswerCheck
    ) -> None:
        headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        settings = self._settings
        async with asyncio.timeout(settings.first_byte_timeout_s):
            # Never followed: a 3xx is the upstream's fault, and each hop would be a new target.
            response = await self._http.post(
                self._url, json=body, headers=headers, allow_redirects=False
            )
        async with response:
            if response.status >= 300:
                raw = await response.content.read(ERROR_BODY_BYTES)
                code, message = failure_for_status(
                    response.status, raw.decode("utf-8", errors="replace"), token
                )
                log.info("cloud job %s: upstream answered HTTP %d (%s)",
                         translator.job_id, response.status, code)
                self._feed(JobFailed(job_id=translator.job_id, code=code, message=message))
                return
            decoder = SseDecoder()
            while not translator.ended:
                async with asyncio.timeout(settings.read_timeout_s):
                    chunk = await response.content.readany()
                if not chunk:
                    break
                for data in decoder.feed(chunk):
                    self._feed_all(check.events(translator.on_data(data)))
            for data in decoder.close():
                self._feed_all(check.events(translator.on_data(data)))
            self._feed_all(check.events(translator.on_end()))

    def _fail(self, job: Job, message: str) -> None:
        self._feed(JobFailed(job_id=job.job_id, code="engine_error", message=message))

    def _feed_all(self, events: list[JobEvent]) -> None:
        for event in events:
            self._feed(event)

    def _feed(self, event: JobEvent) -> None:
        node = self.node
        if node is None:
            return
        with suppress(ProtocolViolation):  # a job the hub already forgot (cancelled, node gone)
            accepted = node.session.receive(event, self._clock.now())
            if isinstance(accepted, TokenDelta | JobDone | JobFailed):
                self._hub.deliver(node, accepted)
