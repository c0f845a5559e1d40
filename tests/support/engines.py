"""What the engine tests share: the prompts, greedy requests, one generation read whole, and the
models they run on (the real Gemma 3 270M GGUF for llama.cpp, a tiny MLX llama built here).

Outputs are learned from each model at run time (greedy first, then a property checked against
it), so the tests hold for whatever text these weights produce.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from agent.engines.base import (
    Engine,
    GeneratedToken,
    GenerationFinished,
    GenerationRequest,
    ModelInfo,
)
from agent.models import file_sha256
from protocol.chat import ChatMessage, SamplingParams

COLOURS = "Name three colours."
COUNTING = "Count from one to ten."

LLAMA_CONTEXT_LENGTH = 512
MLX_CONTEXT_LENGTH = 256

EngineT = TypeVar("EngineT", bound=Engine)


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
    """A request for ``prompt``, greedy unless told: the answer is the model's, not the dice's."""
    return GenerationRequest(
        messages=(ChatMessage(role="user", content=prompt),),
        params=SamplingParams(
            max_tokens=max_tokens, temperature=temperature, stop=stop, seed=seed
        ),
        top_logprobs=top_logprobs,
        continuation=continuation,
    )


async def generate(engine: Engine, generation: GenerationRequest) -> Generation:
    """Run one generation, checking the stream's shape: tokens, then exactly one finish."""
    events = [event async for event in engine.generate(generation)]
    assert events, "the stream ended without any event"
    *tokens, finished = events
    assert all(isinstance(token, GeneratedToken) for token in tokens)
    assert isinstance(finished, GenerationFinished)
    return Generation(tuple(tokens), finished)  # type: ignore[arg-type]


@asynccontextmanager
async def closing(engine: EngineT) -> AsyncIterator[EngineT]:
    """``engine``, closed afterwards however the block ends."""
    try:
        yield engine
    finally:
        await engine.close()


async def reference_answer(engine: Engine) -> Generation:
    """The greedy answer to COLOURS, as the reference other tests compare against."""
    return await generate(engine, request(COLOURS, max_tokens=24))


async def drain(stream: AsyncIterator[object]) -> list[object]:
    """Every event left in ``stream``."""
    return [event async for event in stream]


def gemma_model_info(path: Path, tmp_path_factory: pytest.TempPathFactory) -> ModelInfo:
    """The Gemma GGUF as the llama.cpp engine is given it, digest and all."""
    with pytest.MonkeyPatch.context() as env:
        # Keep the digest cache out of the real user cache.
        env.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        digest = file_sha256(path)
    assert len(digest) == 64
    return ModelInfo(str(path), digest, context_length=LLAMA_CONTEXT_LENGTH)


# --- a tiny MLX model ----------------------------------------------------------------------------

TINY_CORPUS = (
    "Name three colours. Red, green and blue are colours, and so are yellow and purple.",
    "Count from one to ten: one, two, three, four, five, six, seven, eight, nine, ten.",
    "The quick brown fox jumps over the lazy dog while the cafe serves tea and cake.",
    "A small model writes short answers: yes, no, maybe, always, never, sometimes.",
)
TINY_SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>")
TINY_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
TINY_WEIGHTS_SEED = 4  # a seed whose greedy answers wander rather than repeat one token


def build_tiny_mlx_model(directory: Path) -> Path:
    """A 2-layer llama with random weights and a trained BPE tokenizer, in mlx-lm's layout.

    Saved as mlx-lm saves, so ``mlx_lm.load`` reads it for real. Its answers are nonsense.
    """
    import mlx.core as mx
    from mlx_lm.models import llama
    from mlx_lm.utils import save_config, save_model
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(TINY_CORPUS, trainers.BpeTrainer(
        vocab_size=400, special_tokens=list(TINY_SPECIAL_TOKENS), show_progress=False,
        # Printable ASCII and the space (as byte-level BPE spells it): any JSON can be spelt.
        initial_alphabet=[chr(c) for c in range(33, 127)] + ["\u0120"],
    ))
    bpe.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", bpe.token_to_id("<bos>"))]
    )
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=bpe, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
        additional_special_tokens=list(TINY_SPECIAL_TOKENS[3:]),
    )
    tokenizer.chat_template = TINY_CHAT_TEMPLATE
    tokenizer.save_pretrained(directory)
    config = {
        "model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2,
        "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2,
        "rms_norm_eps": 1e-5, "vocab_size": len(tokenizer), "max_position_embeddings": 1024,
        "tie_word_embeddings": False,  # tied random embeddings only ever repeat the last token
    }
    mx.random.seed(TINY_WEIGHTS_SEED)
    model = llama.Model(llama.ModelArgs.from_dict(config))  # type: ignore[no-untyped-call]
    # Special tokens never win, so answers run to max_tokens unless a test ends them.
    model.lm_head.weight[mx.array(tokenizer.all_special_ids)] = 0.0
    save_model(directory, model)
    save_config(config, directory / "config.json")
    return directory


def tiny_mlx_model_info(path: Path) -> ModelInfo:
    """The tiny MLX model as the MLX engine is given it."""
    return ModelInfo(str(path), "0" * 64, context_length=MLX_CONTEXT_LENGTH)
