"""Several real coordinator replicas (subprocesses, so they can be SIGKILLed) on one PostgreSQL
and one Redis, and a real nginx in front of them, configured by ``deploy/nginx/koretex.conf``."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai

from coordinator.accounts.accounts import open_account
from coordinator.accounts.api_keys import create_key
from coordinator.economy.ledger import ensure_system_books
from coordinator.store.database import Database
from support.cluster import REPO, TIMEOUT_FACTOR, AgentProcess, wait_for, write_node_key
from support.fingerprints import install_fingerprints

REDIS_URL = os.environ.get("KORETEX_TEST_REDIS_URL")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
MODEL = "smollm2-135m-instruct"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Replica:
    """One ``koretex-coordinator serve`` process."""

    name: str
    directory: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        log = (self.directory / "coordinator.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "coordinator", "serve", "--host", "127.0.0.1",
             "--port", str(self.port)],
            env={**os.environ, **self.env, "KORETEX_BUS__REPLICA_ID": self.name},
            stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
        )
        await wait_for_async(self._healthy, 60, f"replica {self.name} to serve")

    async def _healthy(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"replica {self.name} exited: {self.log_text()[-3000:]}")
        try:
            await self.health()
        except httpx.HTTPError:
            return False
        return True

    async def health(self) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(f"{self.base_url}/healthz")
            response.raise_for_status()
            body: dict[str, Any] = response.json()
            return body

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    async def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            await wait_for(lambda: self.process is None or self.process.poll() is not None, 20)
        except TimeoutError:
            self.process.kill()

    def log_text(self) -> str:
        path = self.directory / "coordinator.log"
        return path.read_text(errors="replace") if path.exists() else ""


async def wait_for_async(predicate: Any, timeout: float, what: str) -> None:
    """Like ``wait_for``, for a coroutine predicate."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout * TIMEOUT_FACTOR
    while not await predicate():
        if loop.time() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def replica_env(database_url: str, **extra: str) -> dict[str, str]:
    """Settings shared by a test's replicas: one database, one Redis, a private key prefix,
    short leases so failures are noticed quickly."""
    assert REDIS_URL is not None
    return {
        "KORETEX_DATABASE_URL": database_url,
        "KORETEX_REDIS_URL": REDIS_URL,
        "KORETEX_BUS__PREFIX": f"test-{secrets.token_hex(6)}",
        "KORETEX_BUS__PRESENCE_TTL_S": "2",
        "KORETEX_BUS__JOB_LEASE_S": "3",
        "KORETEX_BUS__LEADER_LEASE_S": "3",
        "KORETEX_ROUTING__RAMP_START_FRACTION": "1.0",
        "KORETEX_FIRST_TOKEN_TIMEOUT_S": "10",
        "KORETEX_INTER_TOKEN_TIMEOUT_S": "5",
        "KORETEX_UPKEEP_INTERVAL_S": "1",
        "KORETEX_QUEUE_WAIT_S": "20",
        "KORETEX_QUEUE_LENGTH": "1000",
        "KORETEX_HEARTBEAT_INTERVAL_S": "1",
        # Scripted nodes are not the real model: they would never pass the admission exam.
        "KORETEX_AUTHENTICITY__EXAM_CHECKS": "0",
        # Nor are they enrolled: tests of enrollment ask for it.
        "KORETEX_IDENTITY__PAID_REQUIRES_ENROLLMENT": "false",
        **extra,
    }


async def start_replicas(
    directory: Path, database_url: str, count: int, **extra: str
) -> list[Replica]:
    env = replica_env(database_url, **extra)
    if env["KORETEX_AUTHENTICITY__EXAM_CHECKS"] != "0":  # the deployment's fingerprints
        await install_fingerprints(database_url)
    replicas = [Replica(f"r{i + 1}", directory / f"r{i + 1}", env) for i in range(count)]
    await asyncio.gather(*(replica.start() for replica in replicas))
    return replicas


async def api_key(database_url: str, account: str, credits: int = 5_000_000) -> str:
    database = await Database.open(database_url)
    try:
        from datetime import UTC, datetime

        now = datetime.now(UTC)
        books = await ensure_system_books(database, now)
        async with database.session() as session, session.begin():
            owner = await open_account(session, books, now, credits, label=account)
            _, secret = await create_key(session, owner.id, "test", now)
        return secret
    finally:
        await database.close()


def client(base_url: str, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"{base_url}/v1", api_key=key, max_retries=0, timeout=120 * TIMEOUT_FACTOR
    )


def scripted_node(coordinators: list[str], directory: Path, *args: str) -> AgentProcess:
    """A scripted node process dialling ``coordinators`` in turn (wait on the replicas)."""
    urls = [part for url in coordinators for part in ("--coordinator", url)]
    agent = AgentProcess(
        None, [sys.executable, str(REPO / "tests" / "support" / "scripted_agent.py"), *urls,
               *args], directory,  # type: ignore[arg-type]
    )
    agent.node_id = write_node_key(directory / "node.key")
    return agent


@dataclass
class Nginx:
    """nginx as an unprivileged foreground process on a loopback port, in front of replicas."""

    directory: Path
    upstreams: list[int]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> str:
        site = (REPO / "deploy" / "nginx" / "koretex.conf").read_text()
        servers = "".join(
            f"    server 127.0.0.1:{port} max_fails=1 fail_timeout=5s;\n" for port in self.upstreams
        )
        site = re.sub(r"(    server 127\.0\.0\.1:\d+ [^\n]*\n)+", servers, site)
        site = site.replace("listen 80;", f"listen 127.0.0.1:{self.port};")
        temp = self.directory / "temp"
        user = "user root;\n" if os.geteuid() == 0 else ""
        return (
            f"{user}daemon off;\nworker_processes 1;\npid {self.directory}/nginx.pid;\n"
            f"error_log {self.directory}/error.log warn;\n"
            "events { worker_connections 4096; }\n"
            "http {\n  access_log off;\n"
            + "".join(
                f"  {kind}_temp_path {temp}/{kind};\n"
                for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
            )
            + site + "\n}\n"
        )

    async def start(self) -> None:
        (self.directory / "temp").mkdir(parents=True, exist_ok=True)
        conf = self.directory / "nginx.conf"
        conf.write_text(self.config())
        log = (self.directory / "nginx.out").open("ab")
        self.process = subprocess.Popen(
            [NGINX, "-p", str(self.directory), "-c", str(conf)], stdout=log,
            stderr=subprocess.STDOUT,
        )

        async def listening() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError((self.directory / "nginx.out").read_text())
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                return False
            writer.close()
            return True

        await wait_for_async(listening, 20, "nginx to listen")

    async def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                await wait_for(lambda: self.process is None or self.process.poll() is not None, 10)
            except TimeoutError:
                self.process.kill()
