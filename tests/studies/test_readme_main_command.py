"""The README's main command prints the Table-1 analogue the README shows.

``python -m experiments.coverage --config configs/coverage.py`` (the default study,
here without a compilation cache and into a temporary folder) in a fresh interpreter:
every row of the README's table must be in its stdout, in order.
"""

import re

from tests.fresh_interpreter import python as run_python
from tests.test_readme import contains_block, readme_section


def test_main_command_prints_the_readme_table(tmp_path):
    section = readme_section("Studies")
    assert "`python -m experiments.coverage --config configs/coverage.py`" in section
    table = re.search(
        r"prints \(among the convergence and bias tables\) the Table-1\s+analogue, "
        r"our design:\s*\n\s*```\n(.*?)```",
        section,
        re.DOTALL,
    ).group(1)
    rows = table.strip("\n").splitlines()
    assert len(rows) == 2 + 8  # header, rule, θ1..θ5, γ1..γ3
    stdout = run_python(
        [
            "-m",
            "experiments.coverage",
            "--config",
            "configs/coverage.py",
            "--compilation_cache",
            "none",
            f"--config.results_dir={tmp_path}",
        ]
    )
    assert contains_block(stdout.splitlines(), rows)
