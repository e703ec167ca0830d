"""The suite's skip policy: required dependencies are imported, never skipped; only missing hardware may skip.

Every skip that hardware justifies (no CUDA device, no native bf16, no oneDNN bf16 kernels, a GPU where the
case needs none) gives a reason starting with :data:`HARDWARE`. Under CI (``CI`` set to true, as CI services and
``.ci/run`` environments do) any other skip turns into a failure naming its reason: a broken install, a missing
tool or a missing privilege is then seen, not silently skipped.
"""

import os

import pytest

HARDWARE = "hardware: "  # the prefix of every skip reason the policy accepts


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def skip_reason(report) -> str:
    """The reason text of a skipped test report (``Skipped: `` stripped)."""
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return text.removeprefix("Skipped: ")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI, a skip whose reason does not start with HARDWARE is reported as a failure (xfail untouched)."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and under_ci() and not hasattr(report, "wasxfail"):
        reason = skip_reason(report)
        if not reason.startswith(HARDWARE):
            report.outcome = "failed"
            report.longrepr = (
                f"skipped under CI for a reason that is not missing hardware: {reason!r} (only "
                f"reasons starting with {HARDWARE!r} may skip; see tests/conftest.py)"
            )
