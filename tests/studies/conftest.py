"""Every test under tests/studies/ carries the ``studies`` marker.

The study tests (smoke runs of experiments/*.py and benchmarks/*.py through their
real entry points, multi-process runs) are their own tier: ``pytest -m studies`` runs
them, the default ``pytest`` skips them (pytest.ini), and ``.ci/run`` runs all three
tiers. The tiers
partition the suite, so a study test never also carries ``slow``.
"""

import pathlib

import pytest

_HERE = pathlib.Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)  # before pytest's own -m deselection
def pytest_collection_modifyitems(config, items):
    for item in items:
        if _HERE in pathlib.Path(item.path).resolve().parents:
            if item.get_closest_marker("slow") is not None:
                raise pytest.UsageError(
                    f"{item.nodeid}: a study test carries `studies`, not `slow`"
                )
            item.add_marker(pytest.mark.studies)
