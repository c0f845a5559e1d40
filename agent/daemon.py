"""The node daemon's lifecycle: load the engine, keep the link up, drain on a signal, and keep
the status file current throughout."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from agent import __version__, hardware, paths
from agent.engines.select import build_engine
from agent.errors import AgentError, FatalLinkError
from agent.keys import NodeKey
from agent.link import Link
from agent.plan import Served
from agent.settings import AgentSettings
from agent.status import NodeStatus, State, write_status
from agent.worker import JobRunner
from protocol.messages import ModelOffer
from protocol.session import AgentSession, Offer

log = logging.getLogger(__name__)


class StatusReporter:
    """Writes the status file every ``interval_s`` and whenever the link changes state."""

    def __init__(
        self, path: Path, interval_s: float, template: NodeStatus, runner: JobRunner, link: Link
    ) -> None:
        self._path = path
        self._interval_s = interval_s
        self._template = template
        self._runner = runner
        self._link = link
        self.loading = True

    def snapshot(self, state: State | None = None, detail: str | None = None) -> NodeStatus:
        link, stats = self._link, self._runner.stats
        registration = link.registration
        return self._template.model_copy(update={
            "updated_at": datetime.now(UTC),
            "state": state or ("loading" if self.loading else link.state),
            "detail": detail if detail is not None else link.last_error,
            "coordinator": link.connected_coordinator or self._template.coordinator,
            "slots_in_use": self._runner.in_flight,
            "jobs_done": stats.jobs_done,
            "jobs_failed": stats.jobs_failed,
            "tokens_served": stats.tokens_served,
            "measured_tok_s": stats.measured_tok_s,
            "operator": registration.operator if registration else None,
            "earned": registration.earned if registration else None,
        })

    def write(self, state: State | None = None, detail: str | None = None) -> None:
        try:
            write_status(self._path, self.snapshot(state, detail))
        except OSError as exc:  # a status file is a courtesy: never stop serving over it
            log.warning("could not write %s: %s", self._path, exc)

    async def run(self) -> None:
        while True:
            self.write()
            # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancel that lands as
            # the event fires, and this task is cancelled right after a state change.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval_s):
                    await self._link.changed.wait()
            self._link.changed.clear()


async def serve(settings: AgentSettings, key: NodeKey, served: Sequence[Served]) -> None:
    """Run until SIGTERM/SIGINT, then stop taking jobs and finish those in flight."""
    engines = {
        s.model.model_id: build_engine(
            settings.engine, s.model, slots=settings.slots, context_length=s.context_length,
            threads=settings.threads,
        )
        for s in served
    }
    engine_names = sorted({engine.name for engine in engines.values()})
    offer = Offer(
        agent_version=__version__,
        engine=",".join(engine_names),
        models=tuple(
            ModelOffer(
                model=s.model.model_id, weights_sha256=s.model.sha256,
                context_length=s.context_length,
            )
            for s in served
        ),
        slots=settings.slots,
        hardware=hardware.detect(),
        enrollment_token=settings.enrollment_token,
    )
    runner = JobRunner(engines, settings.slots)
    link = Link(
        settings.coordinator, lambda: AgentSession(key.signing_key, offer), runner,
        drain_grace_s=settings.drain_grace_s, backoff_initial_s=settings.backoff_initial_s,
        backoff_max_s=settings.backoff_max_s,
    )
    now = datetime.now(UTC)
    reporter = StatusReporter(paths.status_file(), settings.status_interval_s, NodeStatus(
        pid=os.getpid(), started_at=now, updated_at=now, state="loading",
        coordinator=settings.coordinator[0], node_id=key.node_id, key_store=key.stored_in,
        key_location=key.location, model=", ".join(s.model.model_id for s in served),
        model_path=", ".join(str(s.model.path) for s in served),
        engine=offer.engine, slots=settings.slots,
    ), runner, link)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    reporting = asyncio.create_task(reporter.run())
    try:
        for s in served:
            log.info("loading %s with %s", s.model.path.name, engines[s.model.model_id].name)
            await engines[s.model.model_id].load()
        reporter.loading = False
        await link.run(stop)
    except FatalLinkError as exc:
        reporter.write("refused", str(exc))
        raise
    except AgentError as exc:
        reporter.write("failed", str(exc))
        raise
    else:
        reporter.write("stopped", "")
    finally:
        reporting.cancel()
        await asyncio.gather(reporting, return_exceptions=True)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        for engine in engines.values():
            await engine.close()
    log.info("stopped")
