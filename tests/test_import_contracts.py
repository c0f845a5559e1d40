"""The layering written down in pyproject.toml's import-linter contracts holds: the wire
vocabulary imports neither program, neither program imports the other (the coordinator's
reference runs start the agent's command instead), the installer imports neither, the
coordinator's packages stand in layers (each imports only the floors below it), and the pure cores
do not reach up into I/O."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    assert lint.exists(), "import-linter is missing: it is in requirements.lock (make test)"
    result = subprocess.run(
        [str(lint)], cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout
