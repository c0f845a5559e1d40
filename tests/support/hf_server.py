"""A local stand-in for the Hugging Face hub's file downloads, at its URL layout.

``huggingface_hub`` fetches ``{HF_ENDPOINT}/{owner}/{repo}/resolve/{revision}/{filename}``: a HEAD
for the metadata (``X-Repo-Commit``, ``ETag``, size) then a GET, resumed with ``Range``. This
serves real files that way on a loopback port, so pulls are tested against the real client and
never the internet.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class HubFiles:
    files: dict[tuple[str, str], Path] = field(default_factory=dict)  # (repo, filename) -> file
    requests: list[str] = field(default_factory=list)

    def add(self, repo: str, filename: str, path: Path) -> None:
        self.files[(repo, filename)] = path


async def start_hub(hub: HubFiles) -> tuple[web.AppRunner, str]:
    async def resolve(request: web.Request) -> web.StreamResponse:
        repo = f"{request.match_info['owner']}/{request.match_info['repo']}"
        path = hub.files.get((repo, request.match_info["filename"]))
        hub.requests.append(f"{request.method} {request.path}")
        if path is None:
            return web.Response(status=404, headers={"X-Error-Code": "EntryNotFound"})
        etag = '"' + _sha256(path) + '"'
        headers = {"X-Repo-Commit": COMMIT, "ETag": etag, "Accept-Ranges": "bytes"}
        if request.method == "HEAD":
            headers["Content-Length"] = str(path.stat().st_size)
            return web.Response(status=200, headers=headers)
        return web.FileResponse(path, headers=headers)  # honours Range

    app = web.Application()
    app.router.add_route(
        "*", "/{owner}/{repo}/resolve/{revision}/{filename}", resolve
    )
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


_digests: dict[Path, str] = {}


def _sha256(path: Path) -> str:
    if path not in _digests:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
        _digests[path] = digest.hexdigest()
    return _digests[path]
