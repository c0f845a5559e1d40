"""MLX's sampling, log-probabilities and token text, as the MLX engine uses them: a sampler
whose draws are the request's own, the request's logit processors, a token's log-probability and
top alternatives, and the bytes each token id adds to the text.

Every function imports MLX when called, so this module imports on machines without it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from agent.engines.shaping import LogitShaper
from protocol.chat import SamplingParams, TokenLogprob, TopLogprob


def make_request_sampler(
    temperature: float, top_p: float, seed: int | None, *, top_k: int = 0, min_p: float = 0.0,
) -> Callable[[Any], Any]:
    """mlx-lm's sampler for greedy decoding; otherwise top-k, min-p and top-p (as llama.cpp
    orders them), then a draw with this request's key.

    make_sampler's draws use MLX's global random state, which generations taking turns on one
    thread would share; a seed must give the same answer whatever else the node is running.
    """
    import mlx.core as mx
    from mlx_lm.sample_utils import apply_min_p, apply_top_k, apply_top_p, make_sampler

    if temperature == 0.0:
        return make_sampler(temp=0.0)
    key = mx.random.key(seed if seed is not None else random.getrandbits(63))

    def sample(logprobs: Any) -> Any:
        nonlocal key
        key, draw = mx.random.split(key)
        if top_k > 0:
            logprobs = apply_top_k(logprobs, top_k)
        if min_p > 0.0:
            logprobs = apply_min_p(logprobs, min_p)
        if top_p < 1.0:
            logprobs = apply_top_p(logprobs, top_p)
        return mx.random.categorical(logprobs * (1.0 / temperature), key=draw)

    return sample


def logits_processors(
    params: SamplingParams, shaper: LogitShaper | None
) -> list[Callable[[Any, Any], Any]] | None:
    """The request's logit bias and constraint, then its penalties (mlx-lm's own processors)."""
    import mlx.core as mx
    import numpy as np
    from mlx_lm.sample_utils import make_logits_processors

    processors: list[Callable[[Any, Any], Any]] = []
    if shaper is not None:
        seen: int | None = None  # the tokens the shaper has been told of

        def shape(tokens: Any, logits: Any) -> Any:
            # generate_step builds step n+1 before it yields token n: the shaper learns each
            # sampled token here, from the tokens the step is built on.
            nonlocal seen
            if seen is not None:
                for token in tokens[seen:].tolist():
                    shaper.accept(int(token))
            seen = tokens.size
            row = np.array(logits[0].astype(mx.float32))
            return mx.array(shaper.apply(row))[None].astype(logits.dtype)

        processors.append(shape)
    processors.extend(make_logits_processors(
        repetition_penalty=params.repetition_penalty if params.repetition_penalty != 1.0 else None,
        presence_penalty=params.presence_penalty or None,
        frequency_penalty=params.frequency_penalty or None,
    ))
    return processors or None


def guidance_of(tokenizer: Any) -> Any:
    """llguidance's view of the tokenizer, for constrained decoding."""
    from llguidance.hf import from_tokenizer

    return from_tokenizer(tokenizer._tokenizer, n_vocab=len(tokenizer))


def token_logprob(logprobs: Any, token: int, top_k: int, pieces: Sequence[bytes]) -> TokenLogprob:
    """The chosen token's log-probability under the model (before sampling transforms).

    ``logprobs`` is the log-softmax of the raw logits that mlx-lm's generate_step yields.
    """
    import mlx.core as mx

    top: tuple[TopLogprob, ...] = ()
    if top_k > 0:
        best = mx.argpartition(-logprobs, kth=top_k - 1)[:top_k]
        order = mx.argsort(-logprobs[best])
        ids: list[int] = best[order].tolist()  # type: ignore[assignment]
        values: list[float] = logprobs[best[order]].tolist()
        top = tuple(
            TopLogprob(token=piece_of(pieces, i).decode(errors="replace"), logprob=value)
            for i, value in zip(ids, values, strict=True)
        )
    return TokenLogprob(
        token_id=token,
        token=piece_of(pieces, token).decode(errors="replace"),
        logprob=float(logprobs[token].item()),
        top=top,
    )


def piece_of(pieces: Sequence[bytes], token: int) -> bytes:
    """The bytes ``token`` adds to the text."""
    return pieces[token] if token < len(pieces) else b""  # ids past the tokenizer: padded vocab


def token_pieces(tokenizer: Any) -> tuple[bytes, ...]:
    """The bytes each token id adds to the text, so text streams like llama.cpp's detokenize.

    Byte-level BPE and SentencePiece vocabularies spell their bytes in the token strings (mlx-lm
    tells which a tokenizer is by the detokenizer it picks); any other vocabulary falls back to
    decoding each token alone. Special tokens add nothing, as in llama.cpp.
    """
    from mlx_lm.tokenizer_utils import BPEStreamingDetokenizer, SPMStreamingDetokenizer

    size = len(tokenizer)
    detokenizer = tokenizer.detokenizer
    names: list[str] = tokenizer.convert_ids_to_tokens(list(range(size)))
    if isinstance(detokenizer, BPEStreamingDetokenizer):
        byte_of = _gpt2_byte_decoder()
        pieces = [
            b"".join(bytes([byte_of[c]]) if c in byte_of else c.encode() for c in name)
            for name in names
        ]
    elif isinstance(detokenizer, SPMStreamingDetokenizer):
        pieces = [
            bytes([int(name[3:5], 16)]) if _is_byte_token(name)
            else name.replace("\u2581", " ").encode()
            for name in names
        ]
    else:
        pieces = [tokenizer.decode([i]).encode() for i in range(size)]
    for special in tokenizer.all_special_ids:
        if 0 <= special < size:
            pieces[special] = b""
    return tuple(pieces)


def _is_byte_token(name: str) -> bool:
    return len(name) == 6 and name.startswith("<0x") and name.endswith(">")


def _gpt2_byte_decoder() -> dict[str, int]:
    """GPT-2's printable stand-ins for the 256 byte values, mapped back to the bytes."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    stand_ins = dict(zip(printable, printable, strict=True))
    extra = 0
    for byte in range(256):
        if byte not in stand_ins:
            stand_ins[byte] = 256 + extra
            extra += 1
    return {chr(char): byte for byte, char in stand_ins.items()}
