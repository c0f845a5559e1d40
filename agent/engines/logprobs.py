"""Log-probabilities from the logits of the position that produced a token."""

from __future__ import annotations

from typing import Any

import numpy as np

from protocol.chat import TokenLogprob, TopLogprob


def token_logprob(llm: Any, token: int, top_k: int) -> TokenLogprob:
    """The chosen token's log-probability under the model (before sampling transforms)."""
    logits = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(llm.n_vocab(),))
    return logprob_from_logits(llm, logits, token, top_k)


def logprob_from_logits(llm: Any, logits: Any, token: int, top_k: int) -> TokenLogprob:
    """``token``'s log-probability and the ``top_k`` strongest alternatives from one logits row."""
    peak = float(logits.max())
    log_norm = peak + float(np.log(np.exp(logits - peak).sum()))
    top: tuple[TopLogprob, ...] = ()
    if top_k > 0:
        best = np.argpartition(logits, -top_k)[-top_k:]
        best = best[np.argsort(logits[best])[::-1]]
        top = tuple(
            TopLogprob(
                token=llm.detokenize([int(i)]).decode(errors="replace"),
                logprob=float(logits[i]) - log_norm,
            )
            for i in best
        )
    return TokenLogprob(
        token_id=token,
        token=llm.detokenize([token]).decode(errors="replace"),
        logprob=float(logits[token]) - log_norm,
        top=top,
    )
