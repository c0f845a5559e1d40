"""The node daemon's lifecycle: load the engine, keep the link up, drain on a signal."""

from __future__ import annotations

import asyncio
import logging
import signal

from agent import __version__, hardware
from agent.engines.select import build_engine
from agent.keys import NodeKey
from agent.link import Link
from agent.models import ResolvedModel
from agent.settings import AgentSettings
from agent.worker import JobRunner
from protocol.messages import ModelOffer
from protocol.session import AgentSession, Offer

log = logging.getLogger(__name__)


async def serve(settings: AgentSettings, key: NodeKey, model: ResolvedModel) -> None:
    """Run until SIGTERM/SIGINT, then stop taking jobs and finish those in flight."""
    engine = build_engine(
        settings.engine, model, slots=settings.slots, context_length=settings.context_length,
        threads=settings.threads,
    )
    log.info("loading %s with %s", model.path.name, engine.name)
    await engine.load()
    offer = Offer(
        agent_version=__version__,
        engine=engine.name,
        models=(ModelOffer(
            model=model.model_id, weights_sha256=model.sha256,
            context_length=settings.context_length,
        ),),
        slots=settings.slots,
        hardware=hardware.detect(),
        enrollment_token=settings.enrollment_token,
    )
    runner = JobRunner(engine, model.model_id, settings.slots)
    link = Link(
        settings.coordinator, lambda: AgentSession(key.signing_key, offer), runner,
        drain_grace_s=settings.drain_grace_s, backoff_initial_s=settings.backoff_initial_s,
        backoff_max_s=settings.backoff_max_s,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await link.run(stop)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await engine.close()
    log.info("stopped")
