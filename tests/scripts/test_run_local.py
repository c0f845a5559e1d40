"""``make run`` as a newcomer meets it: a coordinator on its embedded SQLite, the deployment's
fingerprint of SmolLM2 computed once, one local node that passes its exam, and printed examples
whose question the instruct model answers sensibly."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import openai

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_make_run_serves_smollm2_and_its_printed_question_gets_paris(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "KORETEX_PORT": str(port), "HOME": str(tmp_path),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_DATA_HOME": str(tmp_path / "data"),
           "XDG_STATE_HOME": str(tmp_path / "state"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    process = subprocess.Popen(
        [sys.executable, "scripts/run_local.py"], cwd=REPO, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if "Press Ctrl-C" in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert ready.wait(240), "".join(lines)[-4000:]
        output = "".join(lines)
        assert "computing this deployment's fingerprint" in output
        key = re.search(r"Bearer (\S+)\"", output)
        assert key is not None, output[-2000:]
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key.group(1))
        answer = client.chat.completions.create(
            model="smollm2-135m-instruct", max_tokens=32, temperature=0,
            messages=[{"role": "user", "content": "Name the capital of France."}],
        )
        assert "Paris" in (answer.choices[0].message.content or "")
    finally:
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        if process.poll() is None:
            process.kill()
