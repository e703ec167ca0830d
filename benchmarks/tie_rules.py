"""How much the tie rule moves a run's numbers: one model's stored runs under the three rules, side by side.

Writes benchmarks/REPORT_ties.md from the run JSON files (never typed). The runs come from, e.g.:

    python -m cca_bench generate cca openmoji glove50_efficientnet --results-root R
    for t in expected optimistic pessimistic; do
        python -m cca_bench run_benchmark cca openmoji test glove50_efficientnet --results-root R --ties $t
    done
    python benchmarks/tie_rules.py R cca__openmoji__glove50_efficientnet_lite0__test__full__cosine

(the configuration name of the default rule's run; each rule's newest run of that configuration is used).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RULES = ("expected", "optimistic", "pessimistic")


def runs_of(results_root: Path, config: str) -> dict:
    """{rule: run record} of one model's runs under the three rules: the newest run of ``config`` (the default
    rule) and of ``config__ties-RULE`` for the others, as ``compare`` would pick them."""
    from cca_bench.results import resolve_run
    from cca_bench.ties import DEFAULT

    out = {}
    for rule in RULES:
        record = resolve_run(results_root, config if rule == DEFAULT else f"{config}__ties-{rule}")
        if record.get("ties") != rule:
            raise SystemExit(f"{record.get('run_id')}: scored under {record.get('ties')!r}, not {rule!r}")
        out[rule] = record
    return out


def report(runs: dict, config: str) -> str:
    lines = [
        "# How the tie rule moves one run's numbers",
        "",
        f"Runs `{config}` (+ `__ties-optimistic`, `__ties-pessimistic`), written by `run_benchmark --ties "
        "RULE`; this table by `python benchmarks/tie_rules.py` from their JSON files. Printed to the tables' "
        "precision; 'moved' compares full precision with the optimistic rule (the default before the expected "
        "rule).",
        "",
        *table(runs),
    ]
    return "\n".join(lines) + "\n"


def table(runs: dict) -> list[str]:
    """The lines of the metric x rule table of ``{rule: run record}`` and the sentence that counts the moved
    metrics (also rendered into docs/protocols.md by scripts/results_tables.py)."""
    from cca_bench.results import METRIC_COLUMNS, TASKS, fmt_value, rsum

    lines = [
        "| metric | expected (default) | optimistic | pessimistic | moved |",
        "|---|---|---|---|---|",
    ]
    moved = total = 0
    for task, title in TASKS:
        for key, name in METRIC_COLUMNS:
            values = [runs[r]["metrics"][task][key] for r in RULES]
            differs = values[0] != values[1]
            moved, total = moved + differs, total + 1
            lines.append(
                f"| {title} {name} | "
                + " | ".join(fmt_value(v, key) for v in values)
                + f" | {'yes' if differs else 'no'} |"
            )
    sums = [rsum(runs[r]["metrics"]) for r in RULES]
    lines.append("| R-sum | " + " | ".join(f"{v:.1f}" for v in sums) + f" | {'yes' if sums[0] != sums[1] else 'no'} |")
    lines += [
        "",
        f"{moved} of {total} metrics differ between the expected and the optimistic rule at full precision; "
        f"{sum(fmt_value(runs['expected']['metrics'][t][k], k) != fmt_value(runs['optimistic']['metrics'][t][k], k) for t, _ in TASKS for k, _ in METRIC_COLUMNS)} "  # noqa: E501
        "of them at the printed precision.",
    ]
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results_root", type=Path, help="the --results-root the runs were written under")
    ap.add_argument("config", help="configuration name of the default rule's run (as `runs` lists it)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "REPORT_ties.md")
    args = ap.parse_args(argv)
    from cca_bench.fsio import write_atomic

    text = report(runs_of(args.results_root, args.config), args.config)
    write_atomic(args.out, lambda f: f.write(text.encode()))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
