"""Keeping the agent running: launchd on macOS, a systemd user service on Linux, and, where
neither is available (containers), a detached process with a pid file.

What to do is decided by pure functions returning steps (:func:`install_plan`,
:func:`uninstall_plan`); :func:`carry_out` performs them.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psutil

from installer.render import AGENT_ARGS, LAUNCHD_LABEL, render_plist, render_systemd_unit

Manager = Literal["launchd", "systemd", "detached"]
Say = Callable[[str], None]


class ServiceError(Exception):
    """A service manager command failed; the message says which and why."""


@dataclass(frozen=True, slots=True)
class ServiceLayout:
    """Every path and number the service files and commands need."""

    koretex: Path
    drain_grace_s: float
    uid: int
    launch_agent_file: Path
    systemd_unit_file: Path
    pid_file: Path
    status_file: Path
    log_dir: Path
    log_file: Path
    error_log_file: Path

    @property
    def systemd_unit(self) -> str:
        return self.systemd_unit_file.name

    @property
    def agent_argv(self) -> tuple[str, ...]:
        return (str(self.koretex), *AGENT_ARGS)

    @property
    def stop_wait_s(self) -> float:
        return self.drain_grace_s + 15


def agent_executable() -> Path:
    """``koretex`` beside the running interpreter (the installer's virtual environment)."""
    beside = Path(sys.executable).parent / "koretex"
    if beside.exists():
        return beside
    found = shutil.which("koretex")
    return Path(found) if found else beside


# --- which manager ---------------------------------------------------------------------------


def pick_manager(system: str, systemd_user_works: bool) -> Manager:
    if system == "Darwin":
        return "launchd"
    return "systemd" if systemd_user_works else "detached"


def systemd_user_works() -> bool:
    """Whether a systemd user manager answers (it does not in most containers)."""
    if shutil.which("systemctl") is None:
        return False
    try:
        done = subprocess.run(
            ["systemctl", "--user", "show-environment"], capture_output=True, timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def choose_manager(choice: str) -> Manager:
    if choice in ("launchd", "systemd", "detached"):
        return choice  # type: ignore[return-value]
    system = platform.system()
    return pick_manager(system, system == "Linux" and systemd_user_works())


# --- steps -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WriteFile:
    path: Path
    text: str


@dataclass(frozen=True, slots=True)
class RemoveFile:
    path: Path


@dataclass(frozen=True, slots=True)
class MakeDirectory:
    path: Path


@dataclass(frozen=True, slots=True)
class Run:
    argv: tuple[str, ...]
    check: bool = True  # False: the command may fail (e.g. stopping what is not running)


@dataclass(frozen=True, slots=True)
class StartDetached:
    argv: tuple[str, ...]
    pid_file: Path
    log_file: Path


@dataclass(frozen=True, slots=True)
class StopDetached:
    pid_file: Path
    timeout_s: float


Step = WriteFile | RemoveFile | MakeDirectory | Run | StartDetached | StopDetached


def _launchd_target(layout: ServiceLayout) -> str:
    return f"gui/{layout.uid}/{LAUNCHD_LABEL}"


def _systemctl(*args: str, check: bool = True) -> Run:
    return Run(("systemctl", "--user", *args), check)


def install_plan(manager: Manager, layout: ServiceLayout) -> list[Step]:
    """Install (or reinstall, restarting the agent) the service.

    The old agent is stopped before its status file is removed, so any status that appears
    afterwards is the new agent's (``koretex status --wait`` relies on it).
    """
    # A detached agent left from another manager would keep the key busy: stop it first.
    steps: list[Step] = [StopDetached(layout.pid_file, layout.stop_wait_s),
                         MakeDirectory(layout.log_dir)]
    unit = layout.systemd_unit
    if manager == "launchd":
        plist = render_plist(layout.koretex, layout.log_dir, drain_grace_s=layout.drain_grace_s)
        return [*steps,
                Run(("launchctl", "bootout", _launchd_target(layout)), check=False),
                RemoveFile(layout.status_file),
                WriteFile(layout.launch_agent_file, plist),
                Run(("launchctl", "bootstrap", f"gui/{layout.uid}",
                     str(layout.launch_agent_file))),
                Run(("launchctl", "enable", _launchd_target(layout)), check=False)]
    if manager == "systemd":
        text = render_systemd_unit(layout.koretex, drain_grace_s=layout.drain_grace_s)
        return [*steps,
                _systemctl("stop", unit, check=False),
                RemoveFile(layout.status_file),
                WriteFile(layout.systemd_unit_file, text),
                _systemctl("daemon-reload"),
                _systemctl("enable", unit),
                _systemctl("start", unit)]
    return [*steps, RemoveFile(layout.status_file),
            StartDetached(layout.agent_argv, layout.pid_file, layout.log_file)]


def uninstall_plan(manager: Manager, layout: ServiceLayout) -> list[Step]:
    """Stop the agent (it drains first) and remove the service's files."""
    steps: list[Step] = []
    if manager == "launchd":
        steps = [Run(("launchctl", "bootout", _launchd_target(layout)), check=False),
                 RemoveFile(layout.launch_agent_file)]
    elif manager == "systemd":
        steps = [_systemctl("disable", "--now", layout.systemd_unit, check=False),
                 RemoveFile(layout.systemd_unit_file),
                 _systemctl("daemon-reload", check=False)]
    return [*steps, StopDetached(layout.pid_file, layout.stop_wait_s)]


def carry_out(steps: Sequence[Step], say: Say) -> None:
    """Perform the steps in order; raises :class:`ServiceError` on the first that fails."""
    for step in steps:
        if isinstance(step, WriteFile):
            step.path.parent.mkdir(parents=True, exist_ok=True)
            step.path.write_text(step.text, encoding="utf-8")
            say(f"wrote {step.path}")
        elif isinstance(step, RemoveFile):
            if step.path.exists():
                step.path.unlink()
                say(f"removed {step.path}")
        elif isinstance(step, MakeDirectory):
            step.path.mkdir(parents=True, exist_ok=True)
        elif isinstance(step, Run):
            _run(step)
        elif isinstance(step, StartDetached):
            started = start_detached(step.argv, step.pid_file, step.log_file)
            say(f"started the agent detached (pid {started}); logs in {step.log_file}")
        else:
            stopped = stop_detached(step.pid_file, step.timeout_s)
            if stopped is not None:
                say(f"stopped the detached agent (pid {stopped})")


def _run(step: Run) -> None:
    try:
        done = subprocess.run(step.argv, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        if step.check:
            raise ServiceError(f"{' '.join(step.argv)}: {exc}") from exc
        return
    if step.check and done.returncode != 0:
        output = (done.stderr or done.stdout).strip()
        raise ServiceError(f"{' '.join(step.argv)} failed ({done.returncode}): {output}")


# --- the detached fallback -------------------------------------------------------------------


def start_detached(argv: Sequence[str], pid_file: Path, log_file: Path) -> int:
    """Start the agent in its own session, detached from this terminal, logging to a file."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log, open(os.devnull, "rb") as nothing:
        process = subprocess.Popen(
            list(argv), stdin=nothing, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True,
        )
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{process.pid}\n")
    process.returncode = 0  # it outlives us on purpose: no "still running" warning
    return process.pid


def detached_pid(pid_file: Path) -> int | None:
    """The pid in ``pid_file`` if that process is alive and is a Koretex agent."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        command = process.cmdline()
    except psutil.Error:
        return None
    is_agent = "node" in command and "run" in command and any("koretex" in c for c in command)
    return pid if is_agent else None


def stop_detached(pid_file: Path, timeout_s: float) -> int | None:
    """SIGTERM the detached agent (it drains), SIGKILL it after ``timeout_s``; its pid if any."""
    pid = detached_pid(pid_file)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not wait_gone(pid, timeout_s):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            wait_gone(pid, 10)
    with contextlib.suppress(FileNotFoundError):
        pid_file.unlink()
    return pid


def wait_gone(pid: int, timeout_s: float) -> bool:
    """Whether the process ended (or is a zombie nobody reaped yet) within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        except psutil.Error:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


# --- status and logs -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServiceState:
    manager: Manager
    installed: bool
    running: bool
    pid: int | None
    detail: str


def service_state(manager: Manager, layout: ServiceLayout) -> ServiceState:
    if manager == "launchd":
        return _launchd_state(layout)
    if manager == "systemd":
        return _systemd_state(layout)
    pid = detached_pid(layout.pid_file)
    return ServiceState(
        "detached", layout.pid_file.exists(), pid is not None, pid,
        "no service manager here: the agent runs detached and is not restarted if it dies",
    )


def _output(argv: Sequence[str]) -> tuple[int, str]:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=30,
                              check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return 1, str(exc)
    return done.returncode, done.stdout


def _launchd_state(layout: ServiceLayout) -> ServiceState:
    installed = layout.launch_agent_file.exists()
    code, text = _output(("launchctl", "print", _launchd_target(layout)))
    fields = dict(
        (key.strip(), value.strip())
        for key, _, value in (line.partition("=") for line in text.splitlines()) if value
    )
    pid = int(fields["pid"]) if fields.get("pid", "").isdigit() else None
    running = code == 0 and fields.get("state") == "running"
    detail = f"launchd: {fields.get('state', 'not loaded')}"
    return ServiceState("launchd", installed, running, pid, detail)


def _systemd_state(layout: ServiceLayout) -> ServiceState:
    installed = layout.systemd_unit_file.exists()
    _, text = _output(("systemctl", "--user", "show", layout.systemd_unit,
                       "-p", "ActiveState", "-p", "SubState", "-p", "MainPID"))
    fields = dict(line.partition("=")[::2] for line in text.splitlines())
    pid = int(fields["MainPID"]) if fields.get("MainPID", "0") not in ("", "0") else None
    state = f"{fields.get('ActiveState', 'unknown')} ({fields.get('SubState', '?')})"
    running = fields.get("ActiveState") == "active"
    return ServiceState("systemd", installed, running, pid, f"systemd user service: {state}")


def logs_command(
    manager: Manager, layout: ServiceLayout, lines: int, follow: bool
) -> list[str]:
    """The command that shows the agent's logs."""
    if manager == "systemd":
        return ["journalctl", "--user", "-u", layout.systemd_unit, "-n", str(lines),
                "--no-pager", *(["-f"] if follow else [])]
    files = [layout.log_file]
    if manager == "launchd":
        files.append(layout.error_log_file)
    existing = [str(f) for f in files if f.exists()] or [str(layout.log_file)]
    return ["tail", "-n", str(lines), *(["-f"] if follow else []), *existing]

