"""The LaunchAgent plist and the systemd unit, rendered with real paths, and the steps that
install them."""

from __future__ import annotations

import os
import plistlib
import subprocess
import sys
from pathlib import Path

import pytest
from support import required
from support.cluster import REPO

from installer.assets import install_script, launchd_plist_template, systemd_unit_template
from installer.render import (
    LAUNCHD_LABEL,
    render_plist,
    render_systemd_unit,
    stop_timeout_s,
    systemd_command_line,
)
from installer.service import (
    MakeDirectory,
    RemoveFile,
    Run,
    ServiceLayout,
    StartDetached,
    StopDetached,
    WriteFile,
    install_plan,
    logs_command,
    pick_manager,
    uninstall_plan,
)

DRAIN_GRACE_S = 30.0


def layout(home: Path) -> ServiceLayout:
    logs = home / "Library" / "Logs" / "Koretex"
    return ServiceLayout(
        koretex=home / ".koretex" / "venv" / "bin" / "koretex", drain_grace_s=DRAIN_GRACE_S,
        uid=501, launch_agent_file=home / "Library" / "LaunchAgents" / "com.koretex.agent.plist",
        systemd_unit_file=home / ".config" / "systemd" / "user" / "koretex-agent.service",
        pid_file=home / "state" / "agent.pid", status_file=home / "state" / "status.json",
        log_dir=logs, log_file=logs / "agent.log", error_log_file=logs / "agent.err.log",
    )


# --- launchd ---------------------------------------------------------------------------------


@pytest.mark.parametrize("home", ["/Users/ada", "/Users/Ada Lovelace & <Co>"])
def test_the_plist_runs_the_venv_agent_at_login_and_keeps_it_alive(home: str) -> None:
    koretex = Path(home) / ".koretex" / "venv" / "bin" / "koretex"
    logs = Path(home) / "Library" / "Logs" / "Koretex"
    plist = plistlib.loads(render_plist(koretex, logs, drain_grace_s=DRAIN_GRACE_S).encode())
    assert plist["Label"] == LAUNCHD_LABEL
    assert plist["ProgramArguments"] == [str(koretex), "node", "run"]
    assert plist["RunAtLoad"] is True
    assert plist["KeepAlive"] is True
    assert isinstance(plist["ThrottleInterval"], int) and plist["ThrottleInterval"] >= 10
    assert plist["ExitTimeOut"] > DRAIN_GRACE_S
    for key in ("StandardOutPath", "StandardErrorPath"):
        assert Path(plist[key]).parent == logs
        assert Path(plist[key]).parent.parts[-3:] == ("Library", "Logs", "Koretex")
    assert plist["StandardOutPath"] != plist["StandardErrorPath"]


def test_the_plist_template_is_the_one_in_launchd() -> None:
    assert launchd_plist_template() == (REPO / "launchd" / "com.koretex.agent.plist").read_text()
    tracked = subprocess.run(
        ["git", "ls-files", "*.plist"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    assert tracked == ["launchd/com.koretex.agent.plist"]  # one template; wheels get a copy


# --- systemd ---------------------------------------------------------------------------------


def unit_fields(text: str) -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#")
    )


def test_the_unit_restarts_the_agent_and_waits_out_its_drain() -> None:
    fields = unit_fields(render_systemd_unit(Path("/home/ada/bin/koretex"),
                                             drain_grace_s=DRAIN_GRACE_S))
    assert fields["ExecStart"] == "/home/ada/bin/koretex node run"
    assert fields["Restart"] == "always"
    assert int(fields["RestartSec"]) > 0
    assert fields["KillSignal"] == "SIGTERM"
    assert int(fields["TimeoutStopSec"]) == stop_timeout_s(DRAIN_GRACE_S) > DRAIN_GRACE_S
    assert fields["RestartPreventExitStatus"] == "78"
    assert fields["WantedBy"] == "default.target"


def test_exec_start_survives_spaces_percent_and_dollar() -> None:
    line = systemd_command_line(["/opt/my $tools/koretex", "100%", "$HOME"])
    assert line == '"/opt/my $tools/koretex" 100%% $$HOME'


@pytest.mark.parametrize("directory", ["bin", "my tools %i $x"])
def test_the_rendered_unit_passes_systemd_analyze_verify(tmp_path: Path, directory: str) -> None:
    systemd_analyze = required.tool("systemd-analyze", "systemd")
    executable = tmp_path / directory / "koretex"
    executable.parent.mkdir()
    executable.write_text("#!/bin/sh\n")
    executable.chmod(0o755)
    unit = tmp_path / "koretex-agent.service"
    unit.write_text(render_systemd_unit(executable, drain_grace_s=DRAIN_GRACE_S))
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    done = subprocess.run(
        [systemd_analyze, "verify", "--user", str(unit)], capture_output=True, text=True,
        env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)}, check=False,
    )
    # verify only warns about many mistakes, so any output at all is a failure.
    assert (done.returncode, done.stderr + done.stdout) == (0, "")


def test_the_unit_template_and_installer_are_packaged() -> None:
    assert systemd_unit_template() == (
        REPO / "installer" / "templates" / "koretex-agent.service"
    ).read_text()
    assert install_script() == (REPO / "install.sh").read_text()


# --- managers and plans ----------------------------------------------------------------------


def test_the_manager_follows_the_platform() -> None:
    assert pick_manager("Darwin", systemd_user_works=False) == "launchd"
    assert pick_manager("Linux", systemd_user_works=True) == "systemd"
    assert pick_manager("Linux", systemd_user_works=False) == "detached"


def test_installing_under_launchd_bootstraps_the_plist_in_the_gui_domain(tmp_path: Path) -> None:
    paths = layout(tmp_path)
    steps = install_plan("launchd", paths)
    assert steps[0] == StopDetached(paths.pid_file, paths.stop_wait_s)
    written = [s for s in steps if isinstance(s, WriteFile)]
    assert [w.path for w in written] == [paths.launch_agent_file]
    assert plistlib.loads(written[0].text.encode())["ProgramArguments"][0] == str(paths.koretex)
    commands = [s.argv for s in steps if isinstance(s, Run)]
    assert ("launchctl", "bootout", "gui/501/com.koretex.agent") in commands
    assert ("launchctl", "bootstrap", "gui/501", str(paths.launch_agent_file)) in commands
    assert MakeDirectory(paths.log_dir) in steps
    # The old status goes after the old agent stopped and before the new one starts.
    order = [type(s).__name__ + (":" + s.argv[1] if isinstance(s, Run) else "") for s in steps]
    assert order.index("Run:bootout") < order.index("RemoveFile") < order.index("Run:bootstrap")
    assert uninstall_plan("launchd", paths)[:2] == [
        Run(("launchctl", "bootout", "gui/501/com.koretex.agent"), check=False),
        RemoveFile(paths.launch_agent_file),
    ]


def test_installing_under_systemd_enables_and_starts_the_user_unit(tmp_path: Path) -> None:
    paths = layout(tmp_path)
    steps = install_plan("systemd", paths)
    commands = [s.argv[2:] for s in steps if isinstance(s, Run)]
    assert commands == [("stop", "koretex-agent.service"), ("daemon-reload",),
                        ("enable", "koretex-agent.service"), ("start", "koretex-agent.service")]
    assert any(isinstance(s, WriteFile) and s.path == paths.systemd_unit_file for s in steps)
    uninstall = uninstall_plan("systemd", paths)
    assert uninstall[0] == Run(
        ("systemctl", "--user", "disable", "--now", "koretex-agent.service"), check=False
    )
    assert RemoveFile(paths.systemd_unit_file) in uninstall


def test_without_a_service_manager_the_agent_runs_detached(tmp_path: Path) -> None:
    paths = layout(tmp_path)
    assert install_plan("detached", paths) == [
        StopDetached(paths.pid_file, paths.stop_wait_s), MakeDirectory(paths.log_dir),
        RemoveFile(paths.status_file),
        StartDetached((str(paths.koretex), "node", "run"), paths.pid_file, paths.log_file),
    ]
    assert uninstall_plan("detached", paths) == [StopDetached(paths.pid_file, paths.stop_wait_s)]


def test_logs_come_from_the_journal_or_the_log_files(tmp_path: Path) -> None:
    paths = layout(tmp_path)
    assert logs_command("systemd", paths, 50, True) == [
        "journalctl", "--user", "-u", "koretex-agent.service", "-n", "50", "--no-pager", "-f",
    ]
    assert logs_command("detached", paths, 20, False) == [
        "tail", "-n", "20", str(paths.log_file),
    ]


def test_the_agent_cli_offers_the_service_commands() -> None:
    done = subprocess.run([sys.executable, "-m", "agent", "service", "--help"],
                          capture_output=True, text=True, check=True, cwd=REPO)
    for command in ("install", "uninstall", "status", "logs"):
        assert command in done.stdout
