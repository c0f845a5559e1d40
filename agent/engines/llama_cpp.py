"""llama.cpp through llama-cpp-python: one context per slot, each generating on its own thread.

Every generation and every scoring starts from an empty context, evaluating its whole prompt
in the same batches as on a freshly loaded one: llama-cpp-python would otherwise keep the cached
prefix the previous call shares with this one and evaluate only the rest, in batches of another
shape, whose logits differ in the last bits (AVX-512 kernels sum in a shape's own order). Greedy
answers then drift with whatever the slot ran before, and a fingerprint probe would take an
honest node's own cache for a substituted model. Re-evaluating the shared prefix costs one
prefill, which on this path is the smaller part of a request.
"""

from __future__ import annotations

import asyncio
import random
import threading
import warnings
from collections.abc import AsyncGenerator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from agent.engines.base import (
    GenerationEvent,
    GenerationRequest,
    ModelInfo,
    ScoringRequest,
)
from agent.engines.chat_template import ChatTemplate, PromptRenderer
from agent.engines.completion import Completion, params_within_context
from agent.engines.logprobs import logprob_from_logits, token_logprob
from agent.engines.shaping import GuidanceTokenizer, LogitShaper, shaper_for
from agent.engines.thread_bridge import GenerationBridge, outlive
from agent.errors import ContextLengthExceeded, EngineError, EngineUnavailable, RequestRejected
from protocol.chat import ChatMessage, TokenLogprob

SCORE_CHUNK = 32
"""Continuation tokens decoded per batch when scoring: each keeps a full row of logits."""


class LlamaCppEngine:
    """Streams chat completions from a GGUF file with llama.cpp, prompts rendered with the
    chat template the file carries (plain text for a completion model without one)."""

    name = "llama.cpp"

    def __init__(
        self, model: ModelInfo, *, slots: int = 1, n_threads: int = 0, n_batch: int = 512,
    ) -> None:
        self._model = model
        self._prompts: Prompts | None = None  # from the weights' metadata, once loaded
        self._slots = slots
        self._n_threads = n_threads
        self._n_batch = n_batch
        self._contexts: asyncio.Queue[Any] = asyncio.Queue()
        self._all: list[Any] = []
        self._load_lock = asyncio.Lock()
        # One thread per slot: the default executor is sized for I/O, not for slots.
        self._threads = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="llama-slot")

    @property
    def model(self) -> ModelInfo:
        return self._model

    async def load(self) -> None:
        async with self._load_lock:
            while len(self._all) < self._slots:
                context = await asyncio.to_thread(self._new_context)
                if self._prompts is None:
                    self._prompts = prompts_of(context)
                self._all.append(context)
                self._contexts.put_nowait(context)

    def _new_context(self) -> Any:
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise EngineUnavailable(
                "llama-cpp-python is not installed: pip install 'koretex[llama]'"
            ) from exc
        kwargs: dict[str, Any] = {}
        if self._n_threads > 0:
            kwargs["n_threads"] = self._n_threads
            kwargs["n_threads_batch"] = self._n_threads
        try:
            return Llama(
                model_path=self._model.path, n_ctx=self._model.context_length,
                n_batch=self._n_batch, verbose=False, **kwargs,
            )
        except (ValueError, RuntimeError) as exc:
            raise EngineError(f"llama.cpp could not load {self._model.path}: {exc}") from exc

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[GenerationEvent, None]:
        if not self._all:
            await self.load()
        context = await self._contexts.get()
        assert self._prompts is not None  # set by load
        bridge = GenerationBridge("llama.cpp")
        worker = asyncio.get_running_loop().run_in_executor(
            self._threads, _generate_blocking, context, self._prompts, request, bridge
        )
        try:
            async with aclosing(bridge.events(worker)) as events:
                async for event in events:
                    yield event
        finally:
            self._contexts.put_nowait(context)

    async def score(self, request: ScoringRequest) -> tuple[TokenLogprob, ...]:
        if not self._all:
            await self.load()
        context = await self._contexts.get()
        assert self._prompts is not None  # set by load
        worker = asyncio.get_running_loop().run_in_executor(
            self._threads, _score_blocking, context, self._prompts, request
        )
        try:
            return await outlive(worker)  # a cancelled scoring owns the context till it returns
        finally:
            self._contexts.put_nowait(context)

    async def close(self) -> None:
        async with self._load_lock:
            for context in self._all:
                context.close()
            self._all.clear()
            self._contexts = asyncio.Queue()
            self._threads.shutdown(wait=False)
            self._threads = ThreadPoolExecutor(
                max_workers=self._slots, thread_name_prefix="llama-slot"
            )


def _forget(llm: Any) -> None:
    """Return ``llm``'s context to the state of a freshly loaded one.

    llama-cpp-python's reset only rewinds its count of evaluated tokens; clearing the memory
    (cells, their placement and their data) as well means nothing evaluated before can reach
    the next numbers: the same tokens land in the same cells, attended over the same span.
    """
    llm.reset()
    llm._ctx.kv_cache_clear()


@dataclass(frozen=True, slots=True)
class Prompts:
    """A model's prompts as llama.cpp token ids: rendered, then tokenized with one BOS."""

    renderer: PromptRenderer
    bos_token: str  # a template that writes it itself must not get a second one
    guidance: GuidanceTokenizer  # the vocabulary as constraints read it, built on first use

    def tokens(
        self, llm: Any, messages: Sequence[ChatMessage], continuation: str, *, raw: bool = False
    ) -> list[int]:
        """The prompt's token ids: the template's text with its markers as special tokens, the
        consumer's text (contents, continuation) as plain text, so it cannot forge a turn.

        Every path (generation, its prompt count, scoring) tokenizes through here, run by run,
        so they agree token for token.
        """
        segments = self.renderer.segments(messages, continuation, raw=raw)
        if not segments:  # an empty prompt: what llama.cpp gives for b""
            return list(llm.tokenize(b"", add_bos=True, special=False))
        first = segments[0]
        writes_bos = first.trusted and bool(self.bos_token) and first.text.startswith(
            self.bos_token
        )
        ids: list[int] = []
        for index, segment in enumerate(segments):
            add_bos = index == 0 and not writes_bos  # llama.cpp adds it if the vocabulary asks
            ids.extend(
                llm.tokenize(segment.text.encode(), add_bos=add_bos, special=segment.trusted)
            )
        return ids


def prompts_of(llm: Any) -> Prompts:
    """The prompts of a loaded GGUF: its ``tokenizer.chat_template``, if it has one."""
    model = llm._model
    bos_id, eos_id = llm.token_bos(), llm.token_eos()
    bos = model.token_get_text(bos_id) if bos_id != -1 else ""
    eos = model.token_get_text(eos_id) if eos_id != -1 else ""
    source = llm.metadata.get("tokenizer.chat_template")
    template = ChatTemplate(source, bos_token=bos, eos_token=eos) if source else None
    return Prompts(PromptRenderer(template), bos, GuidanceTokenizer(lambda: _guidance_of(llm)))


def _guidance_of(llm: Any) -> Any:
    from llguidance.llamacpp import lltokenizer_from_vocab

    with warnings.catch_warnings():  # llguidance still calls a renamed llama.cpp function
        warnings.simplefilter("ignore", DeprecationWarning)
        return lltokenizer_from_vocab(llm._model.vocab, n_vocab=llm.n_vocab())


def _ends_turn(llm: Any, token: int) -> bool:
    import llama_cpp

    return bool(llama_cpp.llama_vocab_is_eog(llm._model.vocab, token))


def _generate_blocking(
    llm: Any, prompts: Prompts, request: GenerationRequest, bridge: GenerationBridge
) -> None:
    with bridge.producing():
        _run(llm, prompts, request, bridge.emit, bridge.cancelled)


def _run(
    llm: Any, prompts: Prompts, request: GenerationRequest,
    emit: Callable[[GenerationEvent], None], cancelled: threading.Event,
) -> None:
    params = request.params
    raw = request.raw_prompt
    tokens = prompts.tokens(llm, request.messages, request.continuation, raw=raw)
    prompt_tokens = tokens
    if request.continuation:
        prompt_tokens = prompts.tokens(llm, request.messages, "", raw=raw)
    params = params_within_context(
        len(tokens), params, llm.n_ctx(), fill_context=request.fill_context
    )
    llm.set_seed(params.seed if params.seed is not None else random.getrandbits(31))
    greedy = params.temperature == 0.0
    shaper = shaper_for(params, llm.n_vocab(), prompts.guidance)
    if shaper is not None and request.continuation:
        delivered = llm.tokenize(request.continuation.encode(), add_bos=False, special=False)
        shaper.accept_text_tokens(delivered)
    answer = Completion(params, len(prompt_tokens))
    _forget(llm)  # no cached prefix: generate evaluates all of ``tokens``, batched as when fresh
    for token in llm.generate(
        tokens, temp=params.temperature, top_p=params.top_p,
        top_k=1 if greedy else params.top_k, min_p=params.min_p,
        repeat_penalty=params.repetition_penalty, frequency_penalty=params.frequency_penalty,
        presence_penalty=params.presence_penalty, reset=True,
        logits_processor=_processors(shaper),
    ):
        if cancelled.is_set():
            return
        if _ends_turn(llm, token):
            answer.end_turn()
            break
        if shaper is not None:
            shaper.accept(token)
        logprob = token_logprob(llm, token, request.top_logprobs) if request.top_logprobs else None
        emit(answer.token(llm.detokenize([token]), logprob))
        if answer.complete:
            break
    for event in answer.finish():
        emit(event)


def _processors(shaper: LogitShaper | None) -> list[Callable[[Any, Any], Any]] | None:
    """llama-cpp-python's logits processors for ``shaper``: they see each step's logits before
    its penalties and sampler, and the logprobs reported stay the model's own."""
    if shaper is None:
        return None
    return [lambda _input_ids, logits: shaper.apply(logits)]


def _score_blocking(
    llm: Any, prompts: Prompts, request: ScoringRequest
) -> tuple[TokenLogprob, ...]:
    try:
        return _score(llm, prompts, request)
    except (RequestRejected, EngineError):
        raise
    except Exception as exc:  # llama.cpp surfaces its failures as assorted exceptions
        raise EngineError(f"llama.cpp failed to score: {exc}") from exc


def _score(llm: Any, prompts: Prompts, request: ScoringRequest) -> tuple[TokenLogprob, ...]:
    """Prefill prompt then continuation, reading the logits of every continuation position."""
    import numpy as np

    prompt_ids = prompts.tokens(llm, request.messages, request.prefix)
    if request.token_ids is None:
        ids = llm.tokenize(request.text.encode(), add_bos=False, special=False)
    else:
        ids = list(request.token_ids)
    n_vocab = llm.n_vocab()
    if any(not 0 <= token < n_vocab for token in ids):
        raise RequestRejected(f"token ids must lie in [0, {n_vocab})")
    if not ids:
        return ()
    if len(prompt_ids) + len(ids) > llm.n_ctx():
        raise ContextLengthExceeded(
            f"prompt and continuation ({len(prompt_ids) + len(ids)} tokens) exceed the context "
            f"length of {llm.n_ctx()}"
        )
    top_k = request.top_logprobs
    _forget(llm)
    llm.eval(prompt_ids)  # the prompt in a generation's batches: its last row is the same
    last = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(n_vocab,))
    scores = [logprob_from_logits(llm, last, ids[0], top_k)]
    feed = ids[:-1]  # the last token's own logits predict past the continuation
    for start in range(0, len(feed), SCORE_CHUNK):
        chunk = feed[start:start + SCORE_CHUNK]
        n_past = llm.n_tokens
        llm._batch.set_batch(batch=chunk, n_past=n_past, logits_all=True)
        llm._ctx.decode(llm._batch)
        llm.n_tokens = n_past + len(chunk)
        rows = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(len(chunk), n_vocab))
        for offset in range(len(chunk)):
            scores.append(logprob_from_logits(llm, rows[offset], ids[start + offset + 1], top_k))
    return tuple(scores)
