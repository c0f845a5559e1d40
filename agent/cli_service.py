"""``koretex service``: keep the node running with the machine's service manager."""

from __future__ import annotations

import os
import shutil
import subprocess

import pydantic
import typer
from rich.console import Console

from agent import paths
from agent.cli_options import EXIT_CONFIG
from agent.settings import AgentSettings
from installer.service import (
    ServiceError,
    ServiceLayout,
    agent_executable,
    carry_out,
    choose_manager,
    install_plan,
    logs_command,
    service_state,
    uninstall_plan,
)

service_app = typer.Typer(no_args_is_help=True, help="Run the node as a background service.")
console = Console(stderr=True)
out = Console()


def service_layout(drain_grace_s: float) -> ServiceLayout:
    """This machine's layout, for the ``koretex`` of the running interpreter's environment."""
    return ServiceLayout(
        koretex=agent_executable(), drain_grace_s=drain_grace_s, uid=os.getuid(),
        launch_agent_file=paths.launch_agent_file(),
        systemd_unit_file=paths.systemd_unit_file(), pid_file=paths.pid_file(),
        status_file=paths.status_file(), log_dir=paths.log_dir(), log_file=paths.log_file(),
        error_log_file=paths.error_log_file(),
    )


def _settings() -> AgentSettings:
    try:
        return AgentSettings()
    except pydantic.ValidationError as exc:
        console.print(f"[red]error:[/] the settings are invalid: {exc.errors()[0]['msg']}"
                      " (see: koretex config show)")
        raise typer.Exit(EXIT_CONFIG) from exc


def _say(text: str) -> None:
    console.print(f"[dim]{text}[/]")


@service_app.command("install")
def install() -> None:
    """Install the service and (re)start the agent; it starts again at login or boot."""
    settings = _settings()
    if not settings.model:
        console.print("[red]error:[/] no model configured: koretex config set --model NAME")
        raise typer.Exit(EXIT_CONFIG)
    manager = choose_manager(settings.service_manager)
    layout = service_layout(settings.drain_grace_s)
    try:
        carry_out(install_plan(manager, layout), _say)
    except ServiceError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    if manager == "detached":
        console.print("[yellow]no service manager here (no systemd user session): the agent "
                      "runs detached and is not restarted if it dies or the machine reboots[/]")
    elif manager == "systemd":
        console.print("[dim]to keep it running after you log out: loginctl enable-linger[/]")
    console.print(f"[green]the agent runs under {manager}[/]; check it with: koretex status")


@service_app.command("uninstall")
def uninstall(
    purge: bool = typer.Option(
        False, help="Also delete the config, the node key, the state, logs and cached models."
    ),
) -> None:
    """Stop the agent (it finishes jobs in flight) and remove the service."""
    settings = _settings()
    manager = choose_manager(settings.service_manager)
    layout = service_layout(settings.drain_grace_s)
    try:
        carry_out(uninstall_plan(manager, layout), _say)
    except ServiceError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    if purge:
        _purge(settings)
    console.print("[green]the agent is stopped and its service removed[/]")


def _purge(settings: AgentSettings) -> None:
    from agent.keys import forget

    place = forget(settings.key_file)
    if place:
        _say(f"deleted the node key from {place}")
    for directory in {paths.config_dir(), paths.state_dir(), paths.cache_dir(), paths.log_dir()}:
        if directory.exists():
            shutil.rmtree(directory)
            _say(f"removed {directory}")


@service_app.command("status")
def status() -> None:
    """Whether the service is installed and running (see also: koretex status)."""
    settings = _settings()
    manager = choose_manager(settings.service_manager)
    state = service_state(manager, service_layout(settings.drain_grace_s))
    running = "[green]running[/]" if state.running else "[red]not running[/]"
    pid = f" (pid {state.pid})" if state.pid else ""
    installed = "installed" if state.installed else "not installed"
    out.print(f"{manager}: {installed}, {running}{pid}\n[dim]{state.detail}[/]")
    if not state.running:
        raise typer.Exit(3)


@service_app.command("logs")
def logs(
    lines: int = typer.Option(100, "--lines", "-n", help="How many lines to show."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines."),
) -> None:
    """Show the agent's logs."""
    settings = _settings()
    manager = choose_manager(settings.service_manager)
    command = logs_command(manager, service_layout(settings.drain_grace_s), lines, follow)
    try:
        raise typer.Exit(subprocess.run(command, check=False).returncode)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
