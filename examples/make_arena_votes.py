"""Writes examples/arena_votes.csv: a small arena of votes from a known truth (ours).

Eight models with known rewards r (the last in sorted order, "zephyr", at 0) are
compared on 300 prompts by four annotators of known rationality σ (σ = 1: the
reference "alice"; "bob" sharper, "carol" noisier, "dave" clicking at random, σ = 0).
A vote for b has probability sigmoid(σ·(r_b − r_a)); a vote with |σ·(r_b − r_a)| < 0.1
is a tie with probability 0.3. Each vote also records the seconds the annotator spent
(longer for the careful annotators), a candidate rationality covariate.

Run from the repository root: ``python examples/make_arena_votes.py`` (seed 0; the
output is the committed file, bit for bit).
"""

import csv
import os

import numpy as np

MODELS = {
    "atlas": 0.9,
    "beacon": 0.6,
    "cobalt": 0.45,
    "delta": 0.3,
    "ember": 0.2,
    "falcon": -0.2,
    "granite": -0.5,
    "zephyr": 0.0,
}
ANNOTATORS = {"alice": 1.0, "bob": 1.6, "carol": 0.5, "dave": 0.0}  # σ, alice = 1
SHARE = {"alice": 0.4, "bob": 0.2, "carol": 0.25, "dave": 0.15}
MEAN_SECONDS = {"alice": 40.0, "bob": 55.0, "carol": 25.0, "dave": 6.0}
NUM_VOTES = 2400
NUM_PROMPTS = 300


def main(path: str = os.path.join(os.path.dirname(__file__), "arena_votes.csv")):
    rng = np.random.default_rng(0)
    names = list(MODELS)
    reward = np.array([MODELS[m] for m in names])
    annotators = list(ANNOTATORS)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["prompt", "model_a", "model_b", "winner", "annotator", "seconds"]
        )
        for _ in range(NUM_VOTES):
            a, b = rng.choice(len(names), size=2, replace=False)
            who = annotators[rng.choice(len(annotators), p=list(SHARE.values()))]
            eta = ANNOTATORS[who] * (reward[b] - reward[a])
            if abs(eta) < 0.1 and rng.uniform() < 0.3:
                winner = "tie"
            else:
                winner = "b" if rng.uniform() < 1.0 / (1.0 + np.exp(-eta)) else "a"
            seconds = rng.gamma(4.0, MEAN_SECONDS[who] / 4.0)
            prompt = f"prompt-{rng.integers(NUM_PROMPTS):03d}"
            writer.writerow([prompt, names[a], names[b], winner, who, f"{seconds:.1f}"])


if __name__ == "__main__":
    main()
