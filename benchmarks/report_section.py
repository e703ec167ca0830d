"""What the benchmarks share: the machine line, appending a section to a report, writing a whole report."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path


def machine_line() -> str:
    """``on HOST, N cores (shared with other jobs; load average L at the end), DATE UTC``."""
    return (
        f"on {platform.node() or 'this machine'}, {os.cpu_count()} cores (shared with other jobs; load average "
        f"{os.getloadavg()[0]:.1f} at the end), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )


def append(report: Path, lines: list[str]) -> None:
    """Append ``lines`` to ``report`` and print them."""
    with open(report, "a") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


def write(report: Path, lines: list[str]) -> int:
    """Write ``lines`` as the whole of ``report`` (atomically: a crash leaves the old report), print them, and
    return 0 (a benchmark's exit status)."""
    from cca_bench.fsio import write_atomic

    text = "\n".join(lines) + "\n"
    write_atomic(report, lambda f: f.write(text.encode()))
    print(text)
    return 0
