"""Project-wide pytest options. Keep it small: fixtures belong in the test files that use them.

* ``--runslow``: also run tests marked ``slow`` (``make test-all``); without it they are skipped.
* Markers ``slow`` and ``verilator`` are declared in pyproject.toml.
"""

import pytest


def pytest_addoption(parser):
    parser.addoption(
        "--runslow", action="store_true", default=False,
        help="run tests marked slow (long sweeps); `make test-all` passes it",
    )


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip_slow = pytest.mark.skip(reason="slow test: run with --runslow (make test-all)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)
