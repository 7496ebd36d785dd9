"""The README's commands print what the README says they print.

The quick start (a Python block) and ``hetrlhf fit`` on the bundled example file run in
fresh interpreters; the README's printed block must be the first's whole stdout and a
contiguous part of the second's (the command also prints the files it wrote). The main
study command's table is checked in ``tests/studies/test_readme_main_command.py``.
"""

import pathlib
import re

from tests.fresh_interpreter import python as run_python

ROOT = pathlib.Path(__file__).resolve().parents[1]


def readme_section(title: str) -> str:
    """The text of the README's section ``## title`` (up to the next ``## ``)."""
    text = (ROOT / "README.md").read_text()
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def contains_block(lines: list[str], block: list[str]) -> bool:
    return any(lines[i : i + len(block)] == block for i in range(len(lines)))


def test_quick_start_prints_what_the_readme_says():
    code, printed = re.search(
        r"```python\n(.*?)```\s*\nprints\s*\n\s*```\n(.*?)```",
        readme_section("Quick start"),
        re.DOTALL,
    ).groups()
    assert run_python(["-c", code]).splitlines() == printed.strip("\n").splitlines()


def test_fit_command_prints_the_readme_report(tmp_path):
    section = readme_section("Your own data")
    command, printed = re.search(
        r"```bash\n.*?\n(hetrlhf fit .*?)\n```\s*\nprints \(and writes.*?```\n(.*?)```",
        section,
        re.DOTALL,
    ).groups()
    args = command.replace("\\\n", " ").split()[1:]  # after `hetrlhf`
    assert args[:2] == ["fit", "examples/arena_votes.csv"]
    out_at = args.index("--out")
    args[out_at + 1] = str(tmp_path / "report")
    stdout = run_python(["-m", "hetrlhf.cli", *args])
    assert contains_block(stdout.splitlines(), printed.strip("\n").splitlines())
    assert (tmp_path / "report" / "report.json").exists()
