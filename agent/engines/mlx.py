"""MLX through mlx-lm: one model shared by every slot, on one thread that takes turns a token each.

MLX is not safe for concurrent generations on one model from several threads, and a copy of the
weights per slot would multiply the memory of the model the node is bought to serve. So every
MLX call of an engine runs on its own thread: each generation is a generator advanced one token
per turn, round-robin, so with several slots all of them make progress (each at a share of the
speed), a new job waits at most one round for its prefill, and a closed stream is dropped
before its next token.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from agent.engines.base import (
    GenerationEvent,
    GenerationRequest,
    ModelInfo,
    ScoringRequest,
)
from agent.engines.chat_template import (
    ChatTemplateError,
    PromptSegment,
    render_plain,
    segment_prompt,
)
from agent.engines.completion import Completion, params_within_context
from agent.engines.mlx_tokens import (
    guidance_of,
    logits_processors,
    make_request_sampler,
    piece_of,
    token_logprob,
    token_pieces,
)
from agent.engines.shaping import GuidanceTokenizer, shaper_for
from agent.engines.thread_bridge import GenerationBridge
from agent.errors import ContextLengthExceeded, EngineError, EngineUnavailable, RequestRejected
from protocol.chat import ChatMessage, TokenLogprob

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Loaded:
    model: Any  # mlx.nn.Module
    tokenizer: Any  # mlx_lm TokenizerWrapper
    render: Callable[[Sequence[ChatMessage], str], str]  # messages, continuation -> prompt
    pieces: tuple[bytes, ...]  # the bytes each token id adds to the text
    stop_ids: frozenset[int]
    guidance: GuidanceTokenizer  # the vocabulary as constraints read it, built on first use


class MlxEngine:
    """Streams chat completions from a directory of MLX weights (config.json + safetensors).

    Prompts are rendered with the tokenizer's own chat template (plain text for a completion
    model without one).
    """

    name = "mlx"

    def __init__(self, model: ModelInfo, *, slots: int = 1) -> None:
        self._model = model
        self._free_slots = asyncio.Semaphore(slots)
        self._thread: _MlxThread | None = None
        self._loaded: _Loaded | None = None
        self._load_lock = asyncio.Lock()

    @property
    def model(self) -> ModelInfo:
        return self._model

    async def load(self) -> None:
        async with self._load_lock:
            if self._loaded is not None:
                return
            if self._thread is None:
                self._thread = _MlxThread(f"mlx {Path(self._model.path).name}")
            self._loaded = await asyncio.wrap_future(self._thread.call(self._load_blocking))

    def _load_blocking(self) -> _Loaded:
        try:
            import mlx.core as mx
            import mlx_lm
        except ImportError as exc:
            raise EngineUnavailable("mlx-lm is not installed: pip install 'koretex[mlx]'") from exc
        path = Path(self._model.path)
        # mlx_lm.load fetches a missing path from the Hugging Face hub: only ever hand it a
        # directory that is already here.
        if not (path / "config.json").is_file():
            raise EngineError(f"{path} is not a directory of MLX weights (no config.json)")
        try:
            model, tokenizer = mlx_lm.load(str(path))[:2]
        except (OSError, ValueError, KeyError) as exc:
            raise EngineError(f"mlx-lm could not load {path}: {exc}") from exc
        recommended = mx.device_info().get("max_recommended_working_set_size")
        if isinstance(recommended, int):
            # Metal: keep the weights wired, as mlx-lm's generate does, for as long as the
            # process lives: a node process serves this one model.
            mx.set_wired_limit(recommended)
        stop_ids = frozenset(tokenizer.eos_token_ids)
        return _Loaded(model, tokenizer, template_renderer(tokenizer), token_pieces(tokenizer),
                       stop_ids, GuidanceTokenizer(lambda: guidance_of(tokenizer)))

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[GenerationEvent, None]:
        if self._loaded is None:
            await self.load()
        assert self._loaded is not None and self._thread is not None
        loaded, thread = self._loaded, self._thread
        async with self._free_slots:
            bridge = GenerationBridge("MLX")
            worker = asyncio.wrap_future(thread.submit(
                _generation(loaded, self._model.context_length, request, bridge)
            ))
            async with aclosing(bridge.events(worker)) as events:
                async for event in events:
                    yield event

    async def score(self, request: ScoringRequest) -> tuple[TokenLogprob, ...]:
        if self._loaded is None:
            await self.load()
        assert self._loaded is not None and self._thread is not None
        loaded, thread, context_length = self._loaded, self._thread, self._model.context_length
        async with self._free_slots:
            return await asyncio.wrap_future(
                thread.call(lambda: _score(loaded, context_length, request))
            )

    async def close(self) -> None:
        async with self._load_lock:
            thread, self._thread, self._loaded = self._thread, None, None
            if thread is not None:
                await asyncio.to_thread(thread.stop)


# --- the MLX thread --------------------------------------------------------------------------


class _MlxThread:
    """The one thread an engine's MLX calls run on, taking its generations in turns."""

    def __init__(self, name: str) -> None:
        self._ready: deque[tuple[Iterator[None], concurrent.futures.Future[None]]] = deque()
        self._wake = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, work: Iterator[None]) -> concurrent.futures.Future[None]:
        """Advance ``work`` one step per turn until it is exhausted, when the future completes."""
        returned: concurrent.futures.Future[None] = concurrent.futures.Future()
        returned.set_running_or_notify_cancel()  # queued is under way: it cannot be withdrawn
        with self._wake:
            self._ready.append((work, returned))
            self._wake.notify()
        return returned

    def call(self, function: Callable[[], T]) -> concurrent.futures.Future[T]:
        """Run ``function`` on the thread, in turn with the generations."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def once() -> Iterator[None]:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(function())
                except BaseException as exc:
                    future.set_exception(exc)
            return
            yield

        self.submit(once())
        return future

    def stop(self) -> None:
        """Finish the work already submitted, then end the thread (blocks until it has)."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join()

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._ready and not self._stopping:
                    self._wake.wait()
                if not self._ready:
                    return
                work, returned = self._ready.popleft()
            try:
                next(work)
            except StopIteration:
                returned.set_result(None)
                continue
            except Exception:  # a generation reports its own failures; this is a bug
                log.exception("MLX work failed")
                returned.set_result(None)
                continue
            with self._wake:
                self._ready.append((work, returned))


# --- one generation ----------------------------------------------------------------------------


def _generation(
    loaded: _Loaded, context_length: int, request: GenerationRequest, bridge: GenerationBridge,
) -> Iterator[None]:
    with bridge.producing():
        yield from _steps(loaded, context_length, request, bridge.emit, bridge.cancelled)


def _steps(
    loaded: _Loaded, context_length: int, request: GenerationRequest,
    emit: Callable[[GenerationEvent], None], cancelled: threading.Event,
) -> Iterator[None]:
    """Generate, yielding after each token so other generations get their turn."""
    import mlx.core as mx
    from mlx_lm.generate import generate_step

    params = request.params
    raw = request.raw_prompt
    tokens = _encode(loaded, request.messages, request.continuation, raw=raw)
    prompt_tokens = len(tokens)
    if request.continuation:
        prompt_tokens = len(_encode(loaded, request.messages, "", raw=raw))
    params = params_within_context(
        len(tokens), params, context_length, fill_context=request.fill_context
    )
    if cancelled.is_set():
        return
    sampler = make_request_sampler(
        params.temperature, params.top_p, params.seed, top_k=params.top_k, min_p=params.min_p
    )
    shaper = shaper_for(params, len(loaded.pieces), loaded.guidance)
    if shaper is not None and request.continuation:
        shaper.accept_text_tokens(loaded.tokenizer.encode(
            request.continuation, add_special_tokens=False, split_special_tokens=True
        ))
    answer = Completion(params, prompt_tokens)
    step = generate_step(
        mx.array(tokens), loaded.model, max_tokens=params.max_tokens, sampler=sampler,
        logits_processors=logits_processors(params, shaper),
    )
    try:
        for token_id, logprobs in step:
            token = int(token_id)
            if cancelled.is_set():
                return
            if token in loaded.stop_ids:
                answer.end_turn()
                break
            logprob = (
                token_logprob(logprobs, token, request.top_logprobs, loaded.pieces)
                if request.top_logprobs else None
            )
            emit(answer.token(piece_of(loaded.pieces, token), logprob))
            if answer.complete:
                break
            yield
            if cancelled.is_set():
                return
    finally:
        step.close()
    for event in answer.finish():
        emit(event)


def _score(
    loaded: _Loaded, context_length: int, request: ScoringRequest
) -> tuple[TokenLogprob, ...]:
    """One forward pass over prompt plus continuation; the continuation positions' logprobs."""
    import mlx.core as mx

    prompt = _encode(loaded, request.messages, request.prefix)
    if request.token_ids is None:
        ids = list(loaded.tokenizer.encode(request.text, add_special_tokens=False))
    else:
        ids = list(request.token_ids)
    if any(not 0 <= token < len(loaded.pieces) for token in ids):
        raise RequestRejected(f"token ids must lie in [0, {len(loaded.pieces)})")
    if not ids:
        return ()
    if len(prompt) + len(ids) > context_length:
        raise ContextLengthExceeded(
            f"prompt and continuation ({len(prompt) + len(ids)} tokens) exceed the context "
            f"length of {context_length}"
        )
    try:
        logits = loaded.model(mx.array(prompt + ids[:-1])[None])
        logits = logits[0, len(prompt) - 1:, :].astype(mx.float32)
        # As mlx-lm's generate_step reports them, so scores compare with generations.
        logprobs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
        mx.eval(logprobs)
    except Exception as exc:  # MLX surfaces its failures as assorted exceptions
        raise EngineError(f"MLX failed to score: {exc}") from exc
    return tuple(
        token_logprob(logprobs[i], token, request.top_logprobs, loaded.pieces)
        for i, token in enumerate(ids)
    )


def _encode(
    loaded: _Loaded, messages: Sequence[ChatMessage], continuation: str, *, raw: bool = False
) -> list[int]:
    """The prompt's ids: the template's text with its markers as special tokens, consumer text
    (contents, continuation) with any marker it spells split into plain text, so it cannot
    forge a turn; a ``raw`` prompt is all consumer text. Generation, its prompt count and
    scoring all encode through here."""
    tokenizer = loaded.tokenizer
    if raw:
        plain = render_plain(messages, continuation)
        segments: tuple[PromptSegment, ...] = (
            (PromptSegment(plain, trusted=False),) if plain else ()
        )
    else:
        segments = segment_prompt(loaded.render, messages, continuation)
    bos = tokenizer.bos_token
    # A template that writes the BOS itself must not get a second one from the tokenizer.
    writes_bos = bool(
        segments and segments[0].trusted and bos and segments[0].text.startswith(bos)
    )
    if not segments:
        return list(tokenizer.encode("", add_special_tokens=not writes_bos))
    ids: list[int] = []
    for index, segment in enumerate(segments):
        add_special = index == 0 and not writes_bos
        if segment.trusted:
            ids.extend(tokenizer.encode(segment.text, add_special_tokens=add_special))
        else:
            ids.extend(tokenizer.encode(
                segment.text, add_special_tokens=add_special, split_special_tokens=True,
            ))
    return ids


# --- the tokenizer's own chat template -----------------------------------------------------------


def template_renderer(tokenizer: Any) -> Callable[[Sequence[ChatMessage], str], str]:
    """The tokenizer's ``apply_chat_template`` with the continuation appended after the
    generation prompt; plain text for a tokenizer without a template (a completion model)."""
    if not getattr(tokenizer, "chat_template", None):
        return render_plain

    def render(messages: Sequence[ChatMessage], continuation: str) -> str:
        try:
            text: str = tokenizer.apply_chat_template(
                [{"role": m.role, "content": m.content} for m in messages],
                add_generation_prompt=True, tokenize=False,
            )
        except Exception as exc:  # jinja2 raises for conversations a template refuses
            raise ChatTemplateError(
                f"the model's chat template refused the messages: {exc}"
            ) from exc
        return text + continuation

    return render
