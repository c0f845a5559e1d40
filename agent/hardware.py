"""What this machine is, as reported to the coordinator at registration."""

from __future__ import annotations

import platform
import shutil
import subprocess

import psutil

from protocol.messages import Hardware


def _run(*command: str) -> str | None:
    if shutil.which(command[0]) is None:
        return None
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def _chip() -> str:
    if platform.system() == "Darwin":
        return _run("sysctl", "-n", "machdep.cpu.brand_string") or platform.processor()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpu() -> str | None:
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        return "Apple Silicon GPU (Metal)"
    names = _run("nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader")
    return names.splitlines()[0] if names else None


def detect() -> Hardware:
    return Hardware(
        system=platform.system(),
        machine=platform.machine(),
        chip=_chip(),
        cores=psutil.cpu_count(logical=False) or psutil.cpu_count() or 1,
        memory_bytes=psutil.virtual_memory().total,
        gpu=_gpu(),
    )
