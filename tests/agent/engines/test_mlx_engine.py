"""The MLX engine on a tiny llama model built here, beyond the contract every engine keeps
(test_engine_contract.py beside it): agreement with mlx-lm itself, sampling and seeds, the
tokenizer's chat template, the model ending its turn, engine selection, token text and scoring.

The model (tests/support/engines.py) has random weights and a byte-level BPE tokenizer trained on
a few sentences, saved in mlx-lm's own layout so ``mlx_lm.load`` reads it for real. Its answers
are nonsense, so outputs are learned at run time and properties are checked against them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from support.required import mlx_is_available

try:
    import mlx.core as mx
    import mlx_lm
except ImportError as exc:  # a platform without MLX builds skips; elsewhere it is a failure
    if mlx_is_available():
        raise
    pytest.skip(f"MLX has no build for this platform: {exc}", allow_module_level=True)

from support.engines import (
    COLOURS,
    COUNTING,
    MLX_CONTEXT_LENGTH,
    Generation,
    closing,
    generate,
    request,
)

from agent.engines.base import ScoringRequest
from agent.engines.mlx import MlxEngine
from agent.engines.mlx_tokens import token_pieces
from agent.engines.select import build_engine
from agent.models import resolve


def greedy_ids(model: object, prompt: list[int], count: int) -> list[int]:
    """What mlx-lm itself generates greedily, without the engine."""
    from mlx_lm.generate import generate_step

    steps = generate_step(mx.array(prompt), model, max_tokens=count)
    return [int(token) for token, _ in steps]


def rendered(tokenizer: Any, continuation: str) -> str:
    """COLOURS in the tiny model's own chat template, the continuation after it."""
    messages = [{"role": "user", "content": m.content} for m in request(COLOURS).messages]
    text: str = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=False
    )
    return text + continuation


def encoded(tokenizer: Any, text: str) -> list[int]:
    """Tokens as mlx-lm's own generate takes a prompt: no second BOS after the template's."""
    bos = tokenizer.bos_token
    return list(tokenizer.encode(text, add_special_tokens=bos is None or not text.startswith(bos)))


@pytest.fixture(scope="module")
def engine(mlx_engine: MlxEngine) -> MlxEngine:
    """The engine of this module's ``colours`` (tests/agent/engines/conftest.py)."""
    return mlx_engine


async def test_the_stream_matches_mlx_lm_generating_directly(
    tiny_model: Path, colours: Generation
) -> None:
    model, tokenizer = mlx_lm.load(str(tiny_model))[:2]
    prompt = encoded(tokenizer, rendered(tokenizer, ""))
    assert len(prompt) == colours.finished.prompt_tokens
    assert colours.text == tokenizer.decode(greedy_ids(model, prompt, 24))


async def test_logprobs_are_the_model_distribution_not_the_sampler(mlx_engine: MlxEngine) -> None:
    # At a low temperature sampling sharpens the distribution; the reported log-probabilities
    # stay the model's own, so they agree with the greedy run's for the same first token.
    greedy = await generate(mlx_engine, request(COLOURS, max_tokens=1, top_logprobs=5))
    cold = await generate(
        mlx_engine, request(COLOURS, max_tokens=1, top_logprobs=5, temperature=0.05, seed=1)
    )
    assert greedy.tokens[0].logprob is not None and cold.tokens[0].logprob is not None
    assert [t.logprob for t in cold.tokens[0].logprob.top] == pytest.approx(
        [t.logprob for t in greedy.tokens[0].logprob.top], abs=1e-5
    )
    probabilities = sum(pow(2.718281828, t.logprob) for t in greedy.tokens[0].logprob.top)
    assert probabilities < 1.0


async def test_max_tokens_that_exactly_fill_the_context_are_accepted(
    mlx_engine: MlxEngine, colours: Generation
) -> None:
    room = MLX_CONTEXT_LENGTH - colours.finished.prompt_tokens
    exact = await generate(mlx_engine, request(COLOURS, max_tokens=room))
    assert exact.finished.completion_tokens == room


async def test_a_seed_reproduces_a_sampled_answer_whatever_else_runs(
    mlx_engine: MlxEngine,
) -> None:
    sampled = request(COUNTING, max_tokens=16, temperature=1.0, seed=1234)
    alone = await generate(mlx_engine, sampled)
    beside_another = await asyncio.wait_for(asyncio.gather(
        generate(mlx_engine, sampled), generate(mlx_engine, request(COLOURS, max_tokens=16))
    ), timeout=60)
    assert beside_another[0] == alone
    other_seed = await generate(
        mlx_engine, request(COUNTING, max_tokens=16, temperature=1.0, seed=4321)
    )
    assert other_seed.text != alone.text


async def test_a_continuation_matches_mlx_lm_generating_directly(
    mlx_engine: MlxEngine, tiny_model: Path, colours: Generation
) -> None:
    delivered = "".join(token.text for token in colours.tokens[:6])
    resumed = await generate(mlx_engine, request(COLOURS, max_tokens=8, continuation=delivered))
    # The model carries on from the open assistant turn holding the delivered text.
    model, tokenizer = mlx_lm.load(str(tiny_model))[:2]
    prompt = encoded(tokenizer, rendered(tokenizer, delivered))
    assert resumed.text == tokenizer.decode(greedy_ids(model, prompt, 8))


async def test_mlx_weights_are_served_by_the_mlx_engine(
    tiny_model: Path, colours: Generation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # the digest cache stays here
    resolved = resolve(str(tiny_model), model_id="gemma-3-270m")
    engine = build_engine(
        "auto", resolved, slots=1, context_length=MLX_CONTEXT_LENGTH, threads=0
    )
    assert isinstance(engine, MlxEngine) and engine.name == "mlx"
    async with closing(engine):
        answer = await generate(engine, request(COLOURS, max_tokens=24))
    assert answer == colours


# --- token text ----------------------------------------------------------------------------------


def build_sentencepiece_tokenizer(directory: Path, text: str) -> Path:
    """A SentencePiece-style vocabulary as Gemma's tokenizer.json has it: ▁ for spaces, bytes
    spelled <0xXX> for characters outside the vocabulary."""
    from tokenizers import Tokenizer, decoders, models, normalizers
    from transformers import PreTrainedTokenizerFast

    merges = [("▁", "R"), ("▁R", "e"), ("▁Re", "d")]
    pieces = [
        "<pad>", "<bos>", "<eos>", *(f"<0x{byte:02X}>" for byte in range(256)),
        *sorted(set(text.replace(" ", "▁")) - set("日本")), "▁R", "▁Re", "▁Red",
    ]
    spm = Tokenizer(models.BPE(
        vocab={piece: i for i, piece in enumerate(pieces)}, merges=merges, byte_fallback=True
    ))
    spm.normalizer = normalizers.Replace(" ", "▁")
    spm.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    )
    PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=spm, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>"
    ).save_pretrained(directory)
    return directory


@pytest.mark.parametrize("vocabulary", ["byte-level BPE", "SentencePiece"])
def test_token_pieces_spell_the_tokenizers_own_decoding(
    vocabulary: str, tiny_model: Path, tmp_path: Path
) -> None:
    from mlx_lm.tokenizer_utils import BPEStreamingDetokenizer, SPMStreamingDetokenizer
    from mlx_lm.tokenizer_utils import load as load_tokenizer

    bpe = vocabulary == "byte-level BPE"
    text = " Red cafe, and blue" if bpe else " Red café, 日本 and"
    directory = tiny_model if bpe else build_sentencepiece_tokenizer(tmp_path, text)
    tokenizer = load_tokenizer(directory)
    kind = BPEStreamingDetokenizer if bpe else SPMStreamingDetokenizer
    assert isinstance(tokenizer.detokenizer, kind)  # the branch of token_pieces under test
    ids = tokenizer.encode(text, add_special_tokens=False)
    pieces = token_pieces(tokenizer)
    assert len(ids) > 4
    assert b"".join(pieces[i] for i in ids).decode() == tokenizer.decode(ids) == text
    assert all(pieces[i] == b"" for i in tokenizer.all_special_ids)


async def test_scoring_an_answer_reproduces_its_generation_logprobs(
    mlx_engine: MlxEngine,
) -> None:
    sampled = await generate(mlx_engine, request(
        COLOURS, max_tokens=20, top_logprobs=3, temperature=1.0, seed=11
    ))
    claimed = [token.logprob for token in sampled.tokens if token.logprob is not None]
    ids = tuple(lp.token_id for lp in claimed if lp.token_id is not None)
    assert len(ids) == len(claimed) == 20
    scores = await mlx_engine.score(ScoringRequest(
        messages=request(COLOURS).messages, text=sampled.text, token_ids=ids, top_logprobs=3,
    ))
    assert [s.token_id for s in scores] == list(ids)
    for mine, theirs in zip(claimed, scores, strict=True):
        assert theirs.logprob == pytest.approx(mine.logprob, abs=1e-3)
        assert [a.token for a in theirs.top] == [a.token for a in mine.top]
    by_text = await mlx_engine.score(ScoringRequest(
        messages=request(COLOURS).messages, text=sampled.text, top_logprobs=3,
    ))
    assert "".join(s.token for s in by_text) == sampled.text
