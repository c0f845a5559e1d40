"""Scripted nodes forked from one warm process: a new node in milliseconds, not seconds of imports.

Tests that kill a node per trial start this once (``NodeZygote``), then ask it for each node: it
forks a child that runs the scripted agent (tests/support/scripted_agent.py) with the given key
and arguments, and answers with the child's pid, which the test may SIGKILL like any agent's.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


class NodeZygote:
    """The warm parent process; ``spawn`` forks a scripted node from it."""

    def __init__(self, log_path: Path) -> None:
        self._log = log_path.open("ab")
        self._process = subprocess.Popen(
            [sys.executable, str(HERE / "node_zygote.py")], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self._log, cwd=HERE.parents[1],
        )

    def spawn(self, key_file: Path, log_path: Path, *args: str) -> int:
        """Fork a scripted node with ``args`` and the key at ``key_file``; its pid."""
        assert self._process.stdin is not None and self._process.stdout is not None
        request = {"key_file": str(key_file), "log": str(log_path), "args": list(args)}
        self._process.stdin.write(json.dumps(request).encode() + b"\n")
        self._process.stdin.flush()
        answer = self._process.stdout.readline()
        if not answer:
            raise RuntimeError("the node zygote exited")
        return int(answer)

    def stop(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(5)
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._log.close()


def _serve() -> None:
    import scripted_agent  # every import a node needs, paid once here

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                os.environ["KORETEX_KEY_STORE"] = "file"
                os.environ["KORETEX_KEY_FILE"] = request["key_file"]
                sys.argv = ["scripted_agent", *request["args"]]
                asyncio.run(scripted_agent.main())
            except BaseException:  # the child must never return into the parent's loop
                code = 1
            finally:
                os._exit(code)
        sys.stdout.write(f"{pid}\n")
        sys.stdout.flush()
    # stdin closed: the test is over; end every child still running (the group is ours)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.killpg(0, signal.SIGTERM)


if __name__ == "__main__":
    os.setpgrp()  # its children form one group, ended together when the test ends
    _serve()
