"""The files in deploy/ are valid for the tools that read them: systemd and nginx."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support import required
from support.cluster import REPO
from support.replicas import NGINX, Nginx


def test_replica_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    systemd_analyze = required.tool("systemd-analyze", "systemd")
    template = (REPO / "deploy" / "systemd" / "koretex-coordinator@.service").read_text()
    assert "ExecStart=/opt/koretex/venv/bin/koretex-coordinator serve" in template
    # verify needs the executable to exist: point it at this environment's python.
    unit = tmp_path / "koretex-coordinator@8421.service"
    unit.write_text(template.replace(
        "/opt/koretex/venv/bin/koretex-coordinator serve", f"{sys.executable} -m coordinator serve"
    ).replace("EnvironmentFile=/etc/koretex/coordinator.env", "EnvironmentFile=-/dev/null"))
    done = subprocess.run(
        [systemd_analyze, "verify", str(unit)], capture_output=True, text=True,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"}, check=False,
    )
    assert done.returncode == 0, done.stderr + done.stdout


def test_nginx_site_passes_nginx_t(tmp_path: Path) -> None:
    required.file(NGINX, "nginx")
    nginx = Nginx(tmp_path, [8421, 8422])
    (tmp_path / "temp").mkdir()
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginx.config())
    done = subprocess.run(
        [NGINX, "-t", "-p", str(tmp_path), "-c", str(conf)], capture_output=True, text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    site = (REPO / "deploy" / "nginx" / "koretex.conf").read_text()
    for directive in ("proxy_buffering off;", "proxy_set_header Upgrade $http_upgrade;",
                      "proxy_read_timeout 1h;", "location = /v1/nodes/connect"):
        assert directive in site
