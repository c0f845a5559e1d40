"""Where ``models add`` takes weights from: a local path, or a Hugging Face reference.

``hf:OWNER/REPO/FILE[@REVISION]`` is one GGUF file of a repo; ``hf:OWNER/REPO[@REVISION]`` a
whole MLX repo. The hub's own variables apply (``HF_ENDPOINT``, ``HF_TOKEN``, ``HF_HUB_OFFLINE``),
and the reference is recorded so agents can pull the same bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from protocol.catalogue import MLX_WEIGHT_FILES

HF_REFERENCE = re.compile(
    r"^hf:(?P<repo>[\w.-]+/[\w.-]+)(?:/(?P<file>[^/@]+))?(?:@(?P<revision>[\w./-]+))?$"
)


@dataclass(frozen=True, slots=True)
class WeightsSource:
    path: Path
    name: str  # the file (or directory) name nodes keep the weights under
    repo: str | None = None
    revision: str | None = None


def fetch_source(source: str) -> WeightsSource:
    """The weights ``source`` names, downloaded first when it is a Hugging Face reference."""
    match = HF_REFERENCE.match(source)
    if match is None:
        path = Path(source).expanduser()
        if not path.exists():
            raise ValueError(
                f"{source!r} is neither a file, a directory, nor hf:OWNER/REPO/FILE[@REVISION]"
            )
        return WeightsSource(path.resolve(), path.resolve().name)
    try:
        from huggingface_hub import hf_hub_download, snapshot_download
    except ImportError as exc:  # the agent's extra brings it, as reference runs need the agent
        raise ValueError(
            f"{source!r} is on Hugging Face, and fetching it needs huggingface_hub: "
            "pip install 'koretex[agent,llama]'"
        ) from exc

    repo, filename, revision = match["repo"], match["file"], match["revision"]
    if filename is None:
        written = snapshot_download(repo, revision=revision, allow_patterns=list(MLX_WEIGHT_FILES))
    else:
        written = hf_hub_download(repo, filename, revision=revision)
    return WeightsSource(Path(written), filename or repo.split("/")[1], repo, revision)
