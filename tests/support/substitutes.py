"""Models a dishonest node might serve in place of the Gemma 3 270M it claims.

* :func:`requantize`: the same model in a cruder format, with llama.cpp's own quantize API.
* :func:`build_tiny_model`: a tiny llama with random weights written with the ``gguf`` package,
  carrying Gemma's tokenizer (copied from the real GGUF's metadata) so it loads in llama.cpp and
  speaks the same token ids: a smaller stand-in under the claimed name.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

TINY_EMBEDDING = 64
TINY_LAYERS = 2
TINY_HEADS = 4
TINY_KV_HEADS = 2
TINY_FF = 128


def requantize(source: Path, target: Path, ftype_name: str = "LLAMA_FTYPE_MOSTLY_Q4_0") -> Path:
    """``source`` re-quantized to ``ftype_name`` (a llama_cpp LLAMA_FTYPE_* constant name)."""
    import llama_cpp

    if target.exists():
        return target
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, ftype_name)
    params.allow_requantize = True
    params.nthread = 2
    partial = target.with_suffix(".partial")
    code = llama_cpp.llama_model_quantize(
        str(source).encode(), str(partial).encode(), ctypes.byref(params)
    )
    if code != 0:
        raise RuntimeError(f"llama_model_quantize failed with {code}")
    partial.rename(target)
    return target


def build_tiny_model(gemma: Path, target: Path, seed: int = 7) -> Path:
    """A 2-layer llama with random weights and Gemma's tokenizer, as a GGUF file."""
    import gguf

    if target.exists():
        return target
    reader = gguf.GGUFReader(str(gemma))
    fields = reader.fields
    tokens = fields["tokenizer.ggml.tokens"].contents()
    scores = fields["tokenizer.ggml.scores"].contents()
    types = fields["tokenizer.ggml.token_type"].contents()
    partial = target.with_suffix(".partial")
    writer = gguf.GGUFWriter(str(partial), "llama")
    writer.add_name("tiny stand-in")
    writer.add_context_length(4096)
    writer.add_embedding_length(TINY_EMBEDDING)
    writer.add_block_count(TINY_LAYERS)
    writer.add_feed_forward_length(TINY_FF)
    writer.add_head_count(TINY_HEADS)
    writer.add_head_count_kv(TINY_KV_HEADS)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_dimension_count(TINY_EMBEDDING // TINY_HEADS)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_tokenizer_model(fields["tokenizer.ggml.model"].contents())
    writer.add_tokenizer_pre(fields["tokenizer.ggml.pre"].contents())
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(fields["tokenizer.ggml.bos_token_id"].contents())
    writer.add_eos_token_id(fields["tokenizer.ggml.eos_token_id"].contents())
    writer.add_unk_token_id(fields["tokenizer.ggml.unknown_token_id"].contents())
    writer.add_pad_token_id(fields["tokenizer.ggml.padding_token_id"].contents())
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_add_space_prefix(False)

    rng = np.random.default_rng(seed)

    def weights(*shape: int, scale: float = 0.5) -> np.ndarray:
        return (rng.standard_normal(shape) * scale / np.sqrt(shape[-1])).astype(np.float16)

    head_dim = TINY_EMBEDDING // TINY_HEADS
    writer.add_tensor(
        "token_embd.weight",
        (rng.standard_normal((len(tokens), TINY_EMBEDDING)) * 0.5).astype(np.float16),
    )
    writer.add_tensor("output_norm.weight", np.ones(TINY_EMBEDDING, dtype=np.float32))
    for block in range(TINY_LAYERS):
        prefix = f"blk.{block}."
        writer.add_tensor(prefix + "attn_norm.weight", np.ones(TINY_EMBEDDING, dtype=np.float32))
        writer.add_tensor(prefix + "ffn_norm.weight", np.ones(TINY_EMBEDDING, dtype=np.float32))
        writer.add_tensor(prefix + "attn_q.weight", weights(TINY_HEADS * head_dim, TINY_EMBEDDING))
        writer.add_tensor(
            prefix + "attn_k.weight", weights(TINY_KV_HEADS * head_dim, TINY_EMBEDDING)
        )
        writer.add_tensor(
            prefix + "attn_v.weight", weights(TINY_KV_HEADS * head_dim, TINY_EMBEDDING)
        )
        writer.add_tensor(
            prefix + "attn_output.weight", weights(TINY_EMBEDDING, TINY_HEADS * head_dim)
        )
        writer.add_tensor(prefix + "ffn_gate.weight", weights(TINY_FF, TINY_EMBEDDING))
        writer.add_tensor(prefix + "ffn_up.weight", weights(TINY_FF, TINY_EMBEDDING))
        writer.add_tensor(prefix + "ffn_down.weight", weights(TINY_EMBEDDING, TINY_FF))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    partial.rename(target)
    return target
