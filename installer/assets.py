"""The files the installer ships: the shell installer and the service templates.

Each exists once in the source tree: ``install.sh`` and the LaunchAgent template
(``launchd/com.koretex.agent.plist``) at its top, the systemd unit in ``installer/templates/``.
A built wheel carries them inside this package (``installer/install.sh`` is a link in the tree;
``setup.py`` copies the plist into ``installer/templates/``), so an installed agent finds them
beside this module and an editable install finds them in the tree.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
SOURCE_TREE = PACKAGE.parent


def _read(packaged: str, in_tree: str) -> str:
    # Package data sits beside this module in both kinds of install (wheels are unpacked).
    beside = PACKAGE / packaged
    if beside.is_file():
        return beside.read_text(encoding="utf-8")
    return (SOURCE_TREE / in_tree).read_text(encoding="utf-8")


@cache
def install_script() -> str:
    """The text of ``install.sh``."""
    return _read("install.sh", "install.sh")


@cache
def systemd_unit_template() -> str:
    return _read("templates/koretex-agent.service", "installer/templates/koretex-agent.service")


@cache
def launchd_plist_template() -> str:
    return _read("templates/com.koretex.agent.plist", "launchd/com.koretex.agent.plist")
