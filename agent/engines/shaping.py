"""What a job does to the model's logits before sampling: ``logit_bias`` and a JSON constraint.

Both engines sample through their own chains (llama.cpp's samplers, mlx-lm's sampler); this
module is the part they share. A :class:`LogitShaper` adds the consumer's biases and masks every
token that would leave the constraint's grammar (llguidance), then is told each token sampled so
the grammar moves on. Penalties, top_k, min_p and temperature stay with the engines' own
samplers, after the shaping, as llama.cpp's server orders them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.errors import EngineError, RequestRejected
from protocol.chat import SamplingParams
from protocol.constraints import json_grammar

if TYPE_CHECKING:
    from llguidance import LLMatcher, LLTokenizer


class ConstraintRejected(RequestRejected):
    """The request's constraint cannot be followed (a schema llguidance refuses, a continuation
    outside its grammar): the consumer's input, neutral for the node."""

    param = "response_format"


class LogitBiasRejected(RequestRejected):
    """A ``logit_bias`` names a token the model's vocabulary does not have."""

    param = "logit_bias"


class GuidanceTokenizer:
    """The model's vocabulary as llguidance reads it, built once on first use (~1 s)."""

    def __init__(self, build: Callable[[], LLTokenizer]) -> None:
        self._build = build
        self._tokenizer: LLTokenizer | None = None
        self._lock = threading.Lock()

    def get(self) -> LLTokenizer:
        with self._lock:
            if self._tokenizer is None:
                try:
                    self._tokenizer = self._build()
                except Exception as exc:  # a vocabulary llguidance cannot read
                    raise EngineError(f"llguidance cannot read the vocabulary: {exc}") from exc
            return self._tokenizer


class LogitShaper:
    """The biases and the constraint of one generation, applied to each step's logits."""

    def __init__(
        self, n_vocab: int, bias: Mapping[int, float], matcher: LLMatcher | None
    ) -> None:
        self._n_vocab = n_vocab
        self._bias_ids = np.fromiter(bias.keys(), dtype=np.int64, count=len(bias))
        self._bias_values = np.fromiter(bias.values(), dtype=np.float32, count=len(bias))
        self._matcher = matcher
        self._mask_words = np.full((n_vocab + 31) // 32, -1, dtype=np.int32)

    @property
    def constrained(self) -> bool:
        return self._matcher is not None

    def allowed(self) -> np.ndarray | None:
        """Which tokens the constraint allows next (a bool per vocabulary entry), or None."""
        if self._matcher is None:
            return None
        words = self._mask_words
        self._matcher.unsafe_compute_mask_ptr(words.ctypes.data, words.nbytes)
        bits = np.unpackbits(words.view(np.uint8), bitorder="little")[: self._n_vocab]
        return bits.astype(bool)

    def apply(self, logits: np.ndarray) -> np.ndarray:
        """``logits`` (one row, the vocabulary wide) shaped in place, and returned."""
        if self._bias_ids.size:
            logits[self._bias_ids] += self._bias_values
        allowed = self.allowed()
        if allowed is not None:  # ids past the vocabulary (a padded output layer) never fit
            logits[: allowed.size][~allowed] = -np.inf
            logits[allowed.size:] = -np.inf
        return logits

    def accept(self, token: int) -> None:
        """Move the constraint past the sampled ``token``."""
        if self._matcher is not None and not self._matcher.consume_token(token):
            raise EngineError(f"the constraint refused a token it allowed: {self._error()}")

    def accept_text_tokens(self, tokens: Sequence[int]) -> None:
        """Move the constraint past a continuation another node already delivered."""
        if self._matcher is not None and not self._matcher.consume_tokens(list(tokens)):
            raise ConstraintRejected(
                f"the answer so far does not follow the response format: {self._error()}"
            )

    def _error(self) -> str:
        return self._matcher.get_error() if self._matcher is not None else ""


def shaper_for(
    params: SamplingParams, n_vocab: int, tokenizer: GuidanceTokenizer
) -> LogitShaper | None:
    """The shaper ``params`` ask for, or None when they ask for no shaping at all.

    Raises :class:`LogitBiasRejected` for a biased token outside the vocabulary and
    :class:`ConstraintRejected` for a schema that does not compile.
    """
    if not params.logit_bias and params.json_schema is None:
        return None
    outside = sorted(token for token in params.logit_bias if not 0 <= token < n_vocab)
    if outside:
        raise LogitBiasRejected(
            f"logit_bias: token {outside[0]} is not in this model's vocabulary "
            f"(ids 0 to {n_vocab - 1})"
        )
    matcher = None
    if params.json_schema is not None:
        matcher = _matcher(tokenizer.get(), params.json_schema)
    return LogitShaper(n_vocab, params.logit_bias, matcher)


def _matcher(tokenizer: LLTokenizer, schema: dict[str, Any]) -> LLMatcher:
    from llguidance import LLMatcher

    try:
        grammar = json_grammar(schema)
    except (ValueError, TypeError) as exc:
        raise ConstraintRejected(f"response_format: the schema cannot be read: {exc}") from exc
    matcher = LLMatcher(tokenizer, grammar, log_level=0)
    if matcher.is_error():
        raise ConstraintRejected(
            f"response_format: the schema cannot be followed: {matcher.get_error()}"
        )
    return matcher
