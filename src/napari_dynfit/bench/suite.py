"""Figures asserted by tests rather than printed by a benchmark: run the tests, print their outcome as JSON.

Usage::

    python -m napari_dynfit.bench.suite tests/test_track_metrics.py [-k EXPR] [-m slow]

Some published figures are thresholds that tests assert on data they generate (e.g. ``--eval`` equal to
traccuracy to 1e-9, the dominant-balance regimes); their measured cell is then "the assertions hold": this
runs pytest on the given arguments (``-p no:cacheprovider``, quiet) and prints one JSON object: ``passed``,
``failed``, ``skipped`` (with the reasons), ``errors`` and the test ids per outcome. Read by
``dynfit bench --all`` (napari_dynfit.bench.figures).
"""

from __future__ import annotations

import json
import sys


class _Collect:
    def __init__(self):
        self.outcomes = {"passed": [], "failed": [], "skipped": [], "errors": []}
        self.reasons = {}

    def pytest_runtest_logreport(self, report):
        if report.when == "call":
            self.outcomes["passed" if report.passed else "failed" if report.failed else "skipped"].append(report.nodeid)
        elif report.failed:
            self.outcomes["errors"].append(report.nodeid)
        elif report.skipped:
            self.outcomes["skipped"].append(report.nodeid)
            if isinstance(report.longrepr, tuple):
                self.reasons[report.nodeid] = str(report.longrepr[2])


def main(argv=None) -> int:
    import pytest

    args = list(sys.argv[1:] if argv is None else argv)
    plugin = _Collect()
    code = pytest.main(["-q", "-p", "no:cacheprovider", *args], plugins=[plugin])
    out = {k: len(v) for k, v in plugin.outcomes.items()}
    out.update(tests=plugin.outcomes, skip_reasons=plugin.reasons, exit_code=int(code), args=args)
    print(json.dumps(out))
    return 0 if out["passed"] + out["failed"] + out["errors"] else 1  # failures are a result; nothing run is not


if __name__ == "__main__":
    sys.exit(main())
