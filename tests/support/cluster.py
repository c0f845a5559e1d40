"""Real coordinators and real agent processes for tests and benchmarks."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import base58
import nacl.signing
import openai
from aiohttp import web

from coordinator.accounts.accounts import open_account
from coordinator.accounts.api_keys import create_key
from coordinator.app import create_app
from coordinator.clock import Clock
from coordinator.routing import NodeSnapshot
from coordinator.services import SERVICES, Services
from coordinator.settings import CoordinatorSettings
from protocol.ids import NodeId
from support.fingerprints import install_fingerprints

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_FACTOR = float(os.environ.get("KORETEX_TEST_TIMEOUT_FACTOR", "1"))


async def wait_for(predicate: Any, timeout: float = 30.0, what: str = "condition") -> None:
    """Poll ``predicate`` until it holds, failing after ``timeout`` (scaled for slow machines)."""
    deadline = time.monotonic() + timeout * TIMEOUT_FACTOR
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass
class RunningCoordinator:
    runner: web.AppRunner
    port: int
    settings: CoordinatorSettings

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def services(self) -> Services:
        return self.runner.app[SERVICES]

    async def api_key(
        self, account: str = "tester", *, spend_limit: int | None = None,
        starter_credits: int | None = None,
    ) -> str:
        """A key on a local account opened with starter credits (the default amount)."""
        services = self.services
        now = services.clock.now()
        starter = (
            services.settings.economy.starter_credits if starter_credits is None
            else starter_credits
        )
        async with services.database.session() as session, session.begin():
            owner = await open_account(
                session, services.ledger.books, now, starter, label=account
            )
            _, secret = await create_key(session, owner.id, "test", now, spend_limit)
        return secret

    async def client(self, account: str = "tester") -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=f"{self.base_url}/v1", api_key=await self.api_key(account), max_retries=0,
            timeout=60 * TIMEOUT_FACTOR,
        )

    def snapshot(self, node_id: str) -> NodeSnapshot:
        """The router's view of one node now: breaker, slots, load, measured speed, health."""
        services = self.services
        return services.router.snapshot(NodeId(node_id), now=services.clock.monotonic())

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_coordinator(
    directory: Path, app_factory: Any = create_app, *, clock: Clock | None = None,
    **overrides: Any,
) -> RunningCoordinator:
    """The real coordinator on a loopback port; ``clock`` lets a test move time forward."""
    directory.mkdir(parents=True, exist_ok=True)
    values: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{directory / 'coordinator.db'}",
        "host": "127.0.0.1",
        "port": 0,
        # Unannounced probes would take slots and jobs that tests count; tests of probes turn
        # them on (``probes={"enabled": True, ...}``).
        "probes": {"enabled": False},
        # Most tests' nodes are scripted, not the real model: fingerprint probes would (rightly)
        # fail them, and the admission exam they would sit. Tests of fingerprints turn them on
        # (``authenticity={...}``).
        "authenticity": {"fingerprint_share": 0.0, "exam_checks": 0},
        # Nor are they enrolled to an operator; tests of enrollment turn the requirement on
        # (``identity={}``).
        "identity": {"paid_requires_enrollment": False},
        # Tests mint node identities by the dozen on loopback; the test of that limit sets it.
        "limits": {"new_nodes_per_minute_per_network": 100_000},
    }
    values.update(overrides)
    settings = CoordinatorSettings(**values)
    authenticity = settings.authenticity
    if authenticity.exam_checks > 0 or authenticity.fingerprint_share > 0:
        await install_fingerprints(settings.database_url)  # what the deployment's operator runs
    app = app_factory(settings, clock=clock) if clock is not None else app_factory(settings)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", settings.port)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return RunningCoordinator(runner, port, settings)


def write_node_key(path: Path) -> str:
    """A fresh node key at ``path`` (owner-only), returning its node id."""
    path.parent.mkdir(parents=True, exist_ok=True)
    key = nacl.signing.SigningKey.generate()
    path.write_text(base58.b58encode(bytes(key)).decode())
    path.chmod(0o600)
    return base58.b58encode(bytes(key.verify_key)).decode()


@dataclass
class AgentProcess:
    """A real ``koretex node run`` process."""

    coordinator: RunningCoordinator
    args: list[str]
    directory: Path
    node_id: str = ""
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @classmethod
    def llama(
        cls, coordinator: RunningCoordinator, model: Path, directory: Path, *, slots: int = 1,
        extra: list[str] | None = None,
    ) -> AgentProcess:
        args = [
            sys.executable, "-m", "agent", "node", "run", "--coordinator", coordinator.base_url,
            "--model", str(model), "--slots", str(slots), "--context-length", "2048",
            *(extra or []),
        ]
        return cls(coordinator, args, directory)

    @classmethod
    def scripted(
        cls, coordinator: RunningCoordinator, directory: Path, *script_args: str
    ) -> AgentProcess:
        args = [
            sys.executable, str(REPO / "tests" / "support" / "scripted_agent.py"),
            "--coordinator", coordinator.base_url, *script_args,
        ]
        return cls(coordinator, args, directory)

    async def start(self, wait: bool = True) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        key_file = self.directory / "node.key"
        if not key_file.exists():
            self.node_id = write_node_key(key_file)
        env = {
            **os.environ,
            "KORETEX_KEY_STORE": "file",
            "KORETEX_KEY_FILE": str(key_file),
            "KORETEX_BACKOFF_INITIAL_S": "0.2",
            "KORETEX_BACKOFF_MAX_S": "2",
            "XDG_CONFIG_HOME": str(self.directory / "config"),
            "XDG_STATE_HOME": str(self.directory / "state"),  # the status file
            **self.env,
        }
        log = (self.directory / "agent.log").open("ab")
        self.process = subprocess.Popen(
            self.args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO
        )
        if wait:
            await self.wait_registered()

    async def wait_registered(self, timeout: float = 60.0) -> None:
        hub = self.coordinator.services.hub

        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"agent exited: {self.log_text()[-2000:]}")
            return hub.get(self.node_id) is not None  # type: ignore[arg-type]

        await wait_for(ready, timeout, f"node {self.node_id} to register")

    def log_text(self) -> str:
        path = self.directory / "agent.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    async def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        process = self.process
        await wait_for(lambda: process.poll() is not None, timeout, "agent to exit")
        return process.returncode

    async def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGCONT)
        self.process.terminate()
        try:
            await self.wait_exit(15)
        except TimeoutError:
            self.process.kill()
            await self.wait_exit(5)
