"""Benchmark: the flax MiniLM encoder vs sentence-transformers (torch) on the shared data.

Embeds every distinct prompt and response of ``../shared/data`` (PandaLM and Tülu,
about 2,200 texts, many truncated at 256 word pieces) with

(a) ``hetrlhf.text_encoder.encode`` (jitted, length-sorted, bucketed batches): a cold
    pass (tokenization, compilation of each bucketed shape, run) and a warm pass;
(b) sentence-transformers' ``SentenceTransformer.encode`` on the same files (only where
    torch and sentence-transformers are importable: a separate virtualenv), also a
    first and a second pass,

and prints texts per second, the compile time (cold − warm), and — with (b) — the
minimum cosine and the largest absolute difference between the two embeddings.

Run (from the repository root, in an environment with hetrlhf's [text] extra, the
weights, and optionally torch + sentence-transformers):
  python benchmarks/text_encoder_speed.py
  python benchmarks/text_encoder_speed.py --batch_size 32 --max_texts 500
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np

from hetrlhf import data as D
from hetrlhf import text_encoder as T


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
    parser.add_argument("--max_texts", type=int, default=0, help="0: all")
    args = parser.parse_args()
    data_dir = args.data_dir
    if not os.path.isdir(data_dir):
        data_dir = "/work/shared/data"
    texts = shared_texts(data_dir)
    if args.max_texts:
        texts = texts[: args.max_texts]
    t0 = time.perf_counter()
    encoder = T.load_encoder()
    load_s = time.perf_counter() - t0
    ids = T.tokenize(encoder.tokenizer, texts)
    n_truncated = sum(len(i) == encoder.config.max_seq_length for i in ids)
    print(
        f"{len(texts)} texts, {sum(map(len, ids))} word pieces, {n_truncated} truncated "
        f"at {encoder.config.max_seq_length}; device {encoder.device}; load {load_s:.2f} s"
    )
    t0 = time.perf_counter()
    T.encode(encoder, texts, batch_size=args.batch_size, progress=False)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    flax_emb = T.encode(encoder, texts, batch_size=args.batch_size, progress=False)
    warm = time.perf_counter() - t0
    rows = [
        ("flax (hetrlhf.text_encoder)", args.batch_size, cold, warm),
    ]
    try:
        import sentence_transformers
        import torch
    except ImportError:
        st_emb = None
        print("torch / sentence-transformers not importable: flax only")
    else:
        model = sentence_transformers.SentenceTransformer(
            str(encoder.model_dir), device="cpu"
        )
        t0 = time.perf_counter()
        model.encode(texts, batch_size=args.st_batch_size)
        st_first = time.perf_counter() - t0
        t0 = time.perf_counter()
        st_emb = model.encode(
            texts, batch_size=args.st_batch_size, convert_to_numpy=True
        )
        st_warm = time.perf_counter() - t0
        rows.append(
            (
                (
                    f"sentence-transformers {sentence_transformers.__version__}, torch "
                    f"{torch.__version__} ({torch.get_num_threads()} threads)"
                ),
                args.st_batch_size,
                st_first,
                st_warm,
            )
        )
    print("| encoder | batch | cold s (first call) | warm s | texts/s warm |")
    print("|---|---|---|---|---|")
    for name, batch, first, w in rows:
        print(f"| {name} | {batch} | {first:.2f} | {w:.2f} | {len(texts) / w:.1f} |")
    print(f"flax compile ≈ cold − warm = {cold - warm:.2f} s")
    if st_emb is not None:
        a, b = flax_emb.astype(np.float64), st_emb.astype(np.float64)
        cos = np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        worst = int(np.argmin(cos))
        print(
            f"cosine flax vs sentence-transformers: min {cos.min():.8f} (text "
            f"{worst}, {len(ids[worst])} pieces), median {np.median(cos):.8f}; "
            f"max |diff| {np.abs(a - b).max():.2e}"
        )


if __name__ == "__main__":
    main()
