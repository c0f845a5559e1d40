"""The MLX engine on a tiny llama model built here: streaming, sampling, stops, slots.

The model has random weights and a byte-level BPE tokenizer trained on a few sentences, saved in
mlx-lm's own layout so ``mlx_lm.load`` reads it for real. Its answers are nonsense, so, as with
the llama.cpp tests, outputs are learned at run time and properties are checked against them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

try:
    import mlx.core as mx
    import mlx_lm
except ImportError as exc:  # only a missing package skips: a broken engine must fail
    pytest.skip(f"mlx-lm is not installed: {exc}", allow_module_level=True)

from agent.engines.base import GeneratedToken, GenerationFinished, GenerationRequest, ModelInfo
from agent.engines.chat_format import FORMATS, ChatFormat, render_gemma
from agent.engines.mlx import MlxEngine, token_pieces
from agent.engines.select import build_engine
from agent.errors import ContextLengthExceeded
from agent.models import resolve
from protocol.chat import ChatMessage, SamplingParams

CONTEXT_LENGTH = 256
COLOURS = "Name three colours."
COUNTING = "Count from one to ten."

CORPUS = (
    "Name three colours. Red, green and blue are colours, and so are yellow and purple.",
    "Count from one to ten: one, two, three, four, five, six, seven, eight, nine, ten.",
    "The quick brown fox jumps over the lazy dog while the cafe serves tea and cake.",
    "A small model writes short answers: yes, no, maybe, always, never, sometimes.",
)
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>")
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
WEIGHTS_SEED = 4  # a seed whose greedy answers wander rather than repeat one token


def build_tiny_model(directory: Path) -> Path:
    """A 2-layer llama with random weights and a trained BPE tokenizer, in mlx-lm's layout."""
    from mlx_lm.models import llama
    from mlx_lm.utils import save_config, save_model
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(CORPUS, trainers.BpeTrainer(
        vocab_size=256, special_tokens=list(SPECIAL_TOKENS), show_progress=False
    ))
    bpe.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", bpe.token_to_id("<bos>"))]
    )
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=bpe, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
        additional_special_tokens=list(SPECIAL_TOKENS[3:]),
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(directory)
    config = {
        "model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2,
        "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2,
        "rms_norm_eps": 1e-5, "vocab_size": len(tokenizer), "max_position_embeddings": 1024,
        "tie_word_embeddings": False,  # tied random embeddings only ever repeat the last token
    }
    mx.random.seed(WEIGHTS_SEED)
    model = llama.Model(llama.ModelArgs.from_dict(config))  # type: ignore[no-untyped-call]
    # Special tokens never win, so answers run to max_tokens unless a test ends them.
    model.lm_head.weight[mx.array(tokenizer.all_special_ids)] = 0.0
    save_model(directory, model)
    save_config(config, directory / "config.json")
    return directory


def greedy_ids(model: object, prompt: list[int], count: int) -> list[int]:
    """What mlx-lm itself generates greedily, without the engine."""
    from mlx_lm.generate import generate_step

    steps = generate_step(mx.array(prompt), model, max_tokens=count)
    return [int(token) for token, _ in steps]


@dataclass(frozen=True)
class Generation:
    tokens: tuple[GeneratedToken, ...]
    finished: GenerationFinished

    @property
    def text(self) -> str:
        return "".join(token.text for token in self.tokens)


def request(
    prompt: str, *, max_tokens: int = 16, stop: tuple[str, ...] = (), top_logprobs: int = 0,
    continuation: str = "", temperature: float = 0.0, seed: int | None = None,
) -> GenerationRequest:
    return GenerationRequest(
        messages=(ChatMessage(role="user", content=prompt),),
        params=SamplingParams(
            max_tokens=max_tokens, temperature=temperature, stop=stop, seed=seed
        ),
        top_logprobs=top_logprobs,
        continuation=continuation,
    )


async def generate(engine: MlxEngine, generation: GenerationRequest) -> Generation:
    """Run one generation, checking the stream's shape: tokens, then exactly one finish."""
    events = [event async for event in engine.generate(generation)]
    assert events, "the stream ended without any event"
    *tokens, finished = events
    assert all(isinstance(token, GeneratedToken) for token in tokens)
    assert isinstance(finished, GenerationFinished)
    return Generation(tuple(tokens), finished)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-mlx"))


def model_info(path: Path) -> ModelInfo:
    return ModelInfo(str(path), "0" * 64, context_length=CONTEXT_LENGTH)


@pytest_asyncio.fixture(scope="module")
async def engine(tiny_model: Path) -> AsyncIterator[MlxEngine]:
    engine = MlxEngine(model_info(tiny_model), FORMATS["gemma"], slots=2)
    await engine.load()
    try:
        yield engine
    finally:
        await engine.close()


@pytest_asyncio.fixture(scope="module")
async def colours(engine: MlxEngine) -> Generation:
    """The greedy answer to COLOURS, as the reference other tests compare against."""
    return await generate(engine, request(COLOURS, max_tokens=24))


async def test_streams_tokens_then_one_finish(colours: Generation) -> None:
    assert colours.text.strip()
    assert colours.finished.finish_reason == "length"
    assert colours.finished.completion_tokens == len(colours.tokens) == 24
    assert 5 < colours.finished.prompt_tokens < 40
    assert all(token.logprob is None for token in colours.tokens)


async def test_greedy_decoding_is_deterministic(engine: MlxEngine, colours: Generation) -> None:
    again = await generate(engine, request(COLOURS, max_tokens=24))
    assert again == colours


async def test_the_stream_matches_mlx_lm_generating_directly(
    engine: MlxEngine, tiny_model: Path, colours: Generation
) -> None:
    model, tokenizer = mlx_lm.load(str(tiny_model))[:2]
    prompt = tokenizer.encode(render_gemma(request(COLOURS).messages, ""))
    assert len(prompt) == colours.finished.prompt_tokens
    assert colours.text == tokenizer.decode(greedy_ids(model, prompt, 24))


async def test_max_tokens_ends_the_generation_with_length(
    engine: MlxEngine, colours: Generation
) -> None:
    short = await generate(engine, request(COLOURS, max_tokens=5))
    assert short.finished.finish_reason == "length"
    assert short.finished.completion_tokens == len(short.tokens) == 5
    assert short.tokens == colours.tokens[:5]


async def test_a_stop_string_cuts_the_output_before_it(
    engine: MlxEngine, colours: Generation
) -> None:
    # A stop spanning two tokens of the known answer, so the engine must hold text back.
    stop = colours.tokens[3].text + colours.tokens[4].text
    cut = colours.text.find(stop)
    assert cut > 0, f"{stop!r} should occur after the start of {colours.text!r}"

    stopped = await generate(engine, request(COLOURS, max_tokens=24, stop=(stop,)))
    assert stopped.text == colours.text[:cut]
    assert stop not in stopped.text
    assert stopped.finished.finish_reason == "stop"
    assert stopped.finished.completion_tokens < 24


async def test_top_logprobs_are_sorted_and_the_greedy_choice_leads(engine: MlxEngine) -> None:
    answer = await generate(engine, request(COLOURS, max_tokens=8, top_logprobs=3))
    assert len(answer.tokens) == 8
    for token in answer.tokens:
        logprob = token.logprob
        assert logprob is not None
        assert logprob.token == token.text  # plain ASCII, one piece per token
        assert len(logprob.top) == 3
        values = [alternative.logprob for alternative in logprob.top]
        assert values == sorted(values, reverse=True)
        assert all(value <= 0.0 for value in values)
        # Greedy decoding picks the most likely token, which is the top alternative.
        assert logprob.token == logprob.top[0].token
        assert logprob.logprob == pytest.approx(logprob.top[0].logprob, abs=1e-5)
        assert len({alternative.token for alternative in logprob.top}) == 3


async def test_logprobs_are_the_model_distribution_not_the_sampler(engine: MlxEngine) -> None:
    # At a low temperature sampling sharpens the distribution; the reported log-probabilities
    # stay the model's own, so they agree with the greedy run's for the same first token.
    greedy = await generate(engine, request(COLOURS, max_tokens=1, top_logprobs=5))
    cold = await generate(
        engine, request(COLOURS, max_tokens=1, top_logprobs=5, temperature=0.05, seed=1)
    )
    assert greedy.tokens[0].logprob is not None and cold.tokens[0].logprob is not None
    assert [t.logprob for t in cold.tokens[0].logprob.top] == pytest.approx(
        [t.logprob for t in greedy.tokens[0].logprob.top], abs=1e-5
    )
    probabilities = sum(pow(2.718281828, t.logprob) for t in greedy.tokens[0].logprob.top)
    assert probabilities < 1.0


async def test_a_prompt_too_long_for_the_context_is_rejected(engine: MlxEngine) -> None:
    long_prompt = " ".join(["colour"] * (CONTEXT_LENGTH + 50))
    with pytest.raises(ContextLengthExceeded, match=str(CONTEXT_LENGTH)):
        await generate(engine, request(long_prompt, max_tokens=8))


async def test_max_tokens_that_would_overflow_the_context_are_rejected(
    engine: MlxEngine, colours: Generation
) -> None:
    room = CONTEXT_LENGTH - colours.finished.prompt_tokens
    with pytest.raises(ContextLengthExceeded):
        await generate(engine, request(COLOURS, max_tokens=room + 1))
    exact = await generate(engine, request(COLOURS, max_tokens=room))
    assert exact.finished.completion_tokens == room
    # The rejection handed its slot back: two generations can still run side by side.
    both = await asyncio.wait_for(
        asyncio.gather(*(generate(engine, request(COLOURS, max_tokens=3)) for _ in range(2))),
        timeout=60,
    )
    assert [g.tokens for g in both] == [colours.tokens[:3]] * 2


async def test_closing_the_stream_early_stops_promptly_and_frees_the_slot(
    engine: MlxEngine, colours: Generation
) -> None:
    counting = await generate(engine, request(COUNTING, max_tokens=12))

    abandoned = engine.generate(request(COLOURS, max_tokens=200))
    held = engine.generate(request(COLOURS, max_tokens=24))  # keeps the other slot busy
    assert isinstance(abandoned, AsyncGenerator)
    assert isinstance(held, AsyncGenerator)
    try:
        assert isinstance(await anext(held), GeneratedToken)
        first_two = [await anext(abandoned), await anext(abandoned)]
        assert first_two == list(colours.tokens[:2])

        closing_started = time.monotonic()
        await abandoned.aclose()
        assert time.monotonic() - closing_started < 2.0

        # Both slots were taken, so this runs only because the abandoned one was freed.
        reused = await asyncio.wait_for(
            generate(engine, request(COUNTING, max_tokens=12)), timeout=60
        )
        assert reused == counting
    finally:
        await held.aclose()


async def test_two_slots_generate_concurrently(engine: MlxEngine, colours: Generation) -> None:
    counting = await generate(engine, request(COUNTING, max_tokens=12))
    first = engine.generate(request(COLOURS, max_tokens=24))
    second = engine.generate(request(COUNTING, max_tokens=12))
    assert isinstance(first, AsyncGenerator) and isinstance(second, AsyncGenerator)
    try:
        # Both are under way before either finishes: the slots take turns, token by token.
        assert await anext(first) == colours.tokens[0]
        assert await anext(second) == counting.tokens[0]
        rest = await asyncio.wait_for(asyncio.gather(
            _drain(first), _drain(second)
        ), timeout=60)
    finally:
        await first.aclose()
        await second.aclose()
    assert [colours.tokens[0], *rest[0][:-1]] == list(colours.tokens)
    assert [counting.tokens[0], *rest[1][:-1]] == list(counting.tokens)
    assert rest[0][-1] == colours.finished and rest[1][-1] == counting.finished


async def _drain(stream: AsyncIterator[object]) -> list[object]:
    return [event async for event in stream]


async def test_a_seed_reproduces_a_sampled_answer_whatever_else_runs(engine: MlxEngine) -> None:
    sampled = request(COUNTING, max_tokens=16, temperature=1.0, seed=1234)
    alone = await generate(engine, sampled)
    beside_another = await asyncio.wait_for(asyncio.gather(
        generate(engine, sampled), generate(engine, request(COLOURS, max_tokens=16))
    ), timeout=60)
    assert beside_another[0] == alone
    other_seed = await generate(
        engine, request(COUNTING, max_tokens=16, temperature=1.0, seed=4321)
    )
    assert other_seed.text != alone.text


async def test_a_continuation_resumes_the_answer(
    engine: MlxEngine, tiny_model: Path, colours: Generation
) -> None:
    delivered = "".join(token.text for token in colours.tokens[:6])
    resumed = await generate(engine, request(COLOURS, max_tokens=8, continuation=delivered))
    assert resumed.finished.completion_tokens == len(resumed.tokens) == 8
    # The continuation is part of the answer, not of the prompt.
    assert resumed.finished.prompt_tokens == colours.finished.prompt_tokens

    # The model carries on from the open assistant turn holding the delivered text.
    model, tokenizer = mlx_lm.load(str(tiny_model))[:2]
    prompt = tokenizer.encode(render_gemma(request(COLOURS).messages, delivered))
    assert resumed.text == tokenizer.decode(greedy_ids(model, prompt, 8))


async def test_the_tokenizer_chat_template_renders_like_the_named_format(
    tiny_model: Path, colours: Generation
) -> None:
    templated = MlxEngine(model_info(tiny_model), None)
    try:
        answer = await generate(templated, request(COLOURS, max_tokens=24))
        resumed = await generate(templated, request(
            COLOURS, max_tokens=4, continuation=colours.tokens[0].text
        ))
    finally:
        await templated.close()
    assert answer == colours
    assert [t.text for t in resumed.tokens] == [t.text for t in colours.tokens[1:5]]


async def test_the_end_of_the_turn_finishes_with_stop(
    tiny_model: Path, colours: Generation
) -> None:
    # A format whose turns end on a token the model emits in its answer: the turn ends there.
    _, tokenizer = mlx_lm.load(str(tiny_model))[:2]
    marker = next(
        token.text for token in colours.tokens[4:]
        if len(tokenizer.encode(token.text, add_special_tokens=False)) == 1
    )
    ends = ChatFormat("gemma-ends-early", render_gemma, marker)
    early = MlxEngine(model_info(tiny_model), ends)
    try:
        answer = await generate(early, request(COLOURS, max_tokens=24))
    finally:
        await early.close()
    first = next(i for i, token in enumerate(colours.tokens) if token.text == marker)
    assert answer.finished.finish_reason == "stop"
    assert answer.tokens == colours.tokens[:first]
    assert answer.finished.completion_tokens == first


async def test_mlx_weights_are_served_by_the_mlx_engine(
    tiny_model: Path, colours: Generation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # the digest cache stays here
    resolved = resolve(str(tiny_model), model_id="gemma-3-270m")
    engine = build_engine(
        "auto", resolved, slots=1, context_length=CONTEXT_LENGTH, threads=0
    )
    assert isinstance(engine, MlxEngine) and engine.name == "mlx"
    try:
        answer = await generate(engine, request(COLOURS, max_tokens=24))
    finally:
        await engine.close()
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


async def test_scoring_an_answer_reproduces_its_generation_logprobs(engine: MlxEngine) -> None:
    from agent.engines.base import ScoringRequest

    sampled = await generate(engine, request(COLOURS, max_tokens=20, top_logprobs=3,
                                             temperature=1.0, seed=11))
    claimed = [token.logprob for token in sampled.tokens if token.logprob is not None]
    ids = tuple(lp.token_id for lp in claimed if lp.token_id is not None)
    assert len(ids) == len(claimed) == 20
    scores = await engine.score(ScoringRequest(
        messages=request(COLOURS).messages, text=sampled.text, token_ids=ids, top_logprobs=3,
    ))
    assert [s.token_id for s in scores] == list(ids)
    for mine, theirs in zip(claimed, scores, strict=True):
        assert theirs.logprob == pytest.approx(mine.logprob, abs=1e-3)
        assert [a.token for a in theirs.top] == [a.token for a in mine.top]
    by_text = await engine.score(ScoringRequest(
        messages=request(COLOURS).messages, text=sampled.text, top_logprobs=3,
    ))
    assert "".join(s.token for s in by_text) == sampled.text


async def test_scoring_refuses_ids_outside_the_vocabulary(engine: MlxEngine) -> None:
    from agent.engines.base import ScoringRequest
    from agent.errors import RequestRejected

    with pytest.raises(RequestRejected):
        await engine.score(ScoringRequest(
            messages=request(COLOURS).messages, text="x", token_ids=(10**7,),
        ))
