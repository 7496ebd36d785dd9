"""Converts the PandaLM test set (../shared/data) into the ``hetrlhf fit`` input format.

    python examples/convert_pandalm.py ../shared/data results/pandalm_votes.csv

Reads the three human annotators and the two LLM judges with
``hetrlhf.data.load_pandalm`` (ties kept; the judges' 25 unparseable verdicts excluded
and counted; the 6 items whose response is the JSON boolean ``true`` converted to the
text "true" and counted) and writes one row per (annotator, item): prompt, response_a,
response_b, model_a, model_b, winner ∈ {a, b, tie}, annotator, annotator_type, item.
The same file then runs in items mode (a leaderboard of the five 7B models) or text
mode (a reward on the responses' text).
"""

import argparse
import csv
import os

from hetrlhf import data


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", help="the folder holding pandalm_testset/")
    parser.add_argument("out", help="the CSV file to write")
    args = parser.parse_args(argv)
    records, summary = data.load_pandalm(
        args.data_dir, judges=True, ties="keep", non_string_text="json"
    )
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    winner = {None: "tie", 0: "a", 1: "b"}
    with open(args.out, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                "prompt",
                "response_a",
                "response_b",
                "model_a",
                "model_b",
                "winner",
                "annotator",
                "annotator_type",
                "item",
            ]
        )
        for r in records:
            writer.writerow(
                [
                    r.prompt,
                    r.response_0,
                    r.response_1,
                    r.model_0,
                    r.model_1,
                    winner[r.label],
                    r.annotator,
                    r.annotator_type,
                    r.group,
                ]
            )
    print(
        f"wrote {args.out}: {len(records)} rows ({summary.num_ties} ties kept as "
        f"'tie'; {summary.num_excluded('invalid')} invalid judge verdicts excluded; "
        f"{summary.num_coerced} rows with a JSON true response converted to text)"
    )


if __name__ == "__main__":
    main()
