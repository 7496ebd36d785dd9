"""Benchmark: the flax MiniLM encoder vs sentence-transformers (torch) on the shared data.

Embeds every distinct prompt and response of ``../shared/data`` (PandaLM and Tülu,
about 2,200 texts, many truncated at 256 word pieces) with

(a) ``hetrlhf.data.text_encoder.encode`` (jitted, length-sorted, bucketed batches);
(b) sentence-transformers' ``SentenceTransformer.encode`` on the same files (only where
    torch and sentence-transformers are importable: a separate virtualenv);

first one pass of each (for flax: tokenization, compilation of each bucketed shape,
run), then ``--repeats`` warm passes alternating between the two (so both see the same
load on a shared machine). Prints texts per second of the fastest warm pass, the
compile time (first − fastest warm flax pass), and — with (b) — the minimum cosine and
the largest absolute difference between the two embeddings.

Run (from the repository root, in an environment with hetrlhf's [text] extra, the
weights, and optionally torch + sentence-transformers):
  python benchmarks/text_encoder_speed.py
  python benchmarks/text_encoder_speed.py --batch_size 32 --max_texts 500 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax
import numpy as np

from hetrlhf import data as D
from hetrlhf.data import text_encoder as T


def shared_texts(data_dir: str) -> list[str]:
    """Every distinct prompt and response of PandaLM and Tülu, sorted."""
    texts: set[str] = set()
    for load in (D.load_pandalm, D.load_tulu1):
        records, _ = load(data_dir)
        for r in records:
            texts |= {r.prompt, r.response_0, r.response_1}
    return sorted(texts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--st_batch_size", type=int, default=32)
    parser.add_argument(
        "--max_texts", type=int, default=0, help="a seeded random sample; 0: all"
    )
    parser.add_argument("--repeats", type=int, default=2, help="warm passes each")
    args = parser.parse_args()
    data_dir = args.data_dir
    if not os.path.isdir(data_dir):
        data_dir = "/work/shared/data"
    texts = shared_texts(data_dir)
    if args.max_texts and args.max_texts < len(texts):
        pick = np.random.default_rng(0).choice(
            len(texts), args.max_texts, replace=False
        )
        texts = [texts[i] for i in sorted(pick)]
    t0 = time.perf_counter()
    encoder = T.load_encoder()
    load_s = time.perf_counter() - t0
    ids = T.tokenize(encoder.tokenizer, texts)
    n_truncated = sum(len(i) == encoder.config.max_seq_length for i in ids)
    print(
        f"{len(texts)} texts, {sum(map(len, ids))} word pieces, {n_truncated} truncated "
        f"at {encoder.config.max_seq_length}; device {encoder.device}; load {load_s:.2f} s"
    )
    # Compilation of every shape the plan uses, timed ahead of time (the first pass
    # below compiles them again through jit's own cache).
    plan = T.plan_batches(
        [len(i) for i in ids], args.batch_size, encoder.config.max_seq_length
    )
    shapes = sorted({(b.rows, b.length) for b in plan})
    t0 = time.perf_counter()
    for rows, length in shapes:
        zeros = np.zeros((rows, length), np.int32)
        jax.jit(T.embed, static_argnames="config").lower(
            encoder.params, zeros, zeros, config=encoder.config
        ).compile()
    compile_s = time.perf_counter() - t0
    print(
        f"{len(plan)} batches, {len(shapes)} shapes {shapes}: ahead-of-time "
        f"compilation {compile_s:.2f} s in all"
    )
    passes = {
        "flax (hetrlhf.data.text_encoder)": lambda: T.encode(
            encoder, texts, batch_size=args.batch_size, progress=False
        )
    }
    batches = {"flax (hetrlhf.data.text_encoder)": args.batch_size}
    try:
        import sentence_transformers
        import torch
    except ImportError:
        print("torch / sentence-transformers not importable: flax only")
    else:
        model = sentence_transformers.SentenceTransformer(
            str(encoder.model_dir), device="cpu"
        )
        name = (
            f"sentence-transformers {sentence_transformers.__version__}, torch "
            f"{torch.__version__} ({torch.get_num_threads()} threads)"
        )
        passes[name] = lambda: model.encode(
            texts, batch_size=args.st_batch_size, convert_to_numpy=True
        )
        batches[name] = args.st_batch_size
    # First passes (flax: tokenization + compilation of each bucketed shape + run),
    # then warm passes alternating between the encoders, so that both see the same
    # machine load.
    first, warm, emb = {}, {name: [] for name in passes}, {}
    for name, run in passes.items():
        t0 = time.perf_counter()
        emb[name] = np.asarray(run())
        first[name] = time.perf_counter() - t0
    for _ in range(args.repeats):
        for name, run in passes.items():
            t0 = time.perf_counter()
            run()
            warm[name].append(time.perf_counter() - t0)
    print(
        f"| encoder | batch | first pass s | warm s (min of {args.repeats}) | texts/s "
        "| word pieces/s |"
    )
    print("|---|---|---|---|---|---|")
    pieces = sum(map(len, ids))
    for name in passes:
        w = min(warm[name])
        print(
            f"| {name} | {batches[name]} | {first[name]:.2f} | {w:.2f} | "
            f"{len(texts) / w:.1f} | {pieces / w:.0f} |"
        )
    flax_name = next(iter(passes))
    print(
        f"flax compile ≈ first pass − fastest warm pass = "
        f"{first[flax_name] - min(warm[flax_name]):.2f} s"
    )
    flax_emb = emb[flax_name]
    st_emb = emb[name] if len(passes) > 1 else None
    if st_emb is not None:
        a, b = flax_emb.astype(np.float64), st_emb.astype(np.float64)
        cos = np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        worst = int(np.argmin(cos))
        print(
            f"cosine flax vs sentence-transformers over {len(texts)} texts: min "
            f"{cos.min():.10f} (1 − min = {1 - cos.min():.1e}; text {worst}, "
            f"{len(ids[worst])} pieces), median {np.median(cos):.10f}; max |diff| "
            f"{np.abs(a - b).max():.2e}"
        )


if __name__ == "__main__":
    main()
