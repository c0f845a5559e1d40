"""A real OpenAI-compatible upstream for cloud-node tests: llama-cpp-python's own server."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from support.cluster import REPO, TIMEOUT_FACTOR

UPSTREAM_MODEL = "gemma-up"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class LlamaServer:
    """``python -m llama_cpp.server`` on loopback, guarded by an API token."""

    model: Path
    token: str
    directory: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self, timeout: float = 120.0) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        log = (self.directory / "upstream.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model),
             "--model_alias", UPSTREAM_MODEL, "--chat_format", "gemma", "--host", "127.0.0.1",
             "--port", str(self.port), "--api_key", self.token, "--n_ctx", "2048",
             "--n_threads", "1", "--logits_all", "true", "--verbose", "false"],
            stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
        )
        deadline = time.monotonic() + timeout * TIMEOUT_FACTOR
        async with httpx.AsyncClient(timeout=5) as http:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"upstream exited: {self.log_text()[-2000:]}")
                try:
                    response = await http.get(f"{self.base_url}/models",
                                              headers={"Authorization": f"Bearer {self.token}"})
                    if response.status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError("upstream did not come up")
                await asyncio.sleep(0.1)

    def log_text(self) -> str:
        path = self.directory / "upstream.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def kill(self) -> None:
        """Die at once, as a crashed or preempted cloud machine does."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGKILL)
        while self.process.poll() is None:
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        deadline = time.monotonic() + 15
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                await self.kill()
                return
            await asyncio.sleep(0.05)


def cloud_settings(master_key: str) -> dict[str, object]:
    """Coordinator cloud settings for tests: the key, and loopback upstreams allowed."""
    return {"master_key": master_key, "allow_private_upstreams": True}
