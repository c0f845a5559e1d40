"""The files the installer ships: the shell installer and the service templates.

They live at the top of the source tree (``install.sh``, ``launchd/``) and inside this package
(``installer/install.sh`` and ``installer/templates/``, links to them in the tree, copies in a
built wheel), so they are found the same way in an editable install and an installed one.
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
