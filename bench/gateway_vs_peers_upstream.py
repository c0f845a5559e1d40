"""A scripted OpenAI-compatible upstream that streams its tokens instantly.

``bench/gateway_vs_peers.py`` measures it bare and puts it behind LiteLLM, so what the table
shows beyond it is the gateway in front.

Run as its own process: ``python bench/gateway_vs_peers_upstream.py --port PORT`` (as
``python bench/gateway_vs_peers.py upstream --port PORT`` runs it too).
"""

from __future__ import annotations

import argparse
import time

import harness
from aiohttp import web

MODEL = "smollm2-135m-instruct"  # a chat model: Gemma 3 270M base serves completions only
TOKENS = 32


async def upstream_chat(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    n = min(int(body.get("max_tokens") or TOKENS), 4096)
    created = int(time.time())
    model = body.get("model", MODEL)
    head = (
        f'{{"id":"chatcmpl-up","object":"chat.completion.chunk","created":{created},'
        f'"model":"{model}","choices":[{{"index":0,"delta":'
    ).encode()
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await response.write(b"data: " + head + b'{"role":"assistant","content":""},'
                         b'"finish_reason":null}]}\n\n')
    for i in range(n):
        await response.write(b"data: " + head + b'{"content":" w%d"},"finish_reason":null}]}\n\n'
                             % i)
    await response.write(b"data: " + head + b'{},"finish_reason":"length"}],'
                         b'"usage":{"prompt_tokens":7,"completion_tokens":%d,'
                         b'"total_tokens":%d}}\n\n' % (n, n + 7))
    await response.write(b"data: [DONE]\n\n")
    return response


async def upstream_models(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [{"id": MODEL, "object": "model"}]})


def serve_upstream(port: int) -> None:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", upstream_chat)
    app.router.add_get("/v1/models", upstream_models)
    harness.use_uvloop()
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    serve_upstream(parser.parse_args().port)
