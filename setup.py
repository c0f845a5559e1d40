"""The one build step pyproject.toml cannot say: the LaunchAgent template lives once, at the top
of the tree (``launchd/``), and a built wheel carries a copy inside the installer package, where
``installer.assets`` finds it once installed (an editable install reads the tree's own)."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

LAUNCHD_TEMPLATE = Path("launchd") / "com.koretex.agent.plist"


class BuildWithLaunchdTemplate(build_py):
    def run(self) -> None:
        super().run()
        templates = Path(self.build_lib) / "installer" / "templates"
        templates.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(LAUNCHD_TEMPLATE, templates / LAUNCHD_TEMPLATE.name)


setup(cmdclass={"build_py": BuildWithLaunchdTemplate})
