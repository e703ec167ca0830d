"""How heavy is `pip install cca_bench`? Distributions resolved by the core install (and by each extra), counted in a
fresh virtualenv, against the install_requires of an earlier revision.

Writes benchmarks/REPORT_install_size.md. Resolution is pip's own (``pip install --dry-run --ignore-installed
--report``) in a new venv, with the CPU torch pin the README uses first on the line (so a CUDA build is never
counted). ``--install`` also installs the core for real in that venv and checks that
``python -c "import cca_bench; cca_bench.RegularizedCCA"`` works there (and that ``import cca_bench`` alone
imports neither torch nor scikit-learn). ``--check MAX`` exits 1 when the core resolves more than MAX
distributions (the CI-step use).

    python benchmarks/install_size.py                        # core + each extra, before = HEAD~ of setup.cfg
    python benchmarks/install_size.py --before b5d8d25 --install
"""

from __future__ import annotations

import argparse
import configparser
import json
import subprocess
import sys
import tempfile
import venv
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TORCH_PIN = "torch==2.13.0"
EXTRAS = ("builtin", "onnx", "formats", "plots", "web", "faiss", "dask", "sentence", "all")


def make_venv(where: Path) -> Path:
    venv.EnvBuilder(with_pip=True).create(where)
    return where / "bin" / "python"


def resolve(python: Path, requirements: list[str], report: Path) -> list[str]:
    """Names of the distributions pip would install for ``requirements`` in an empty environment."""
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--dry-run",
            "--ignore-installed",
            "--report",
            str(report),
            TORCH_PIN,
            *requirements,
        ],
        check=True,
        cwd=ROOT,
    )
    return sorted(item["metadata"]["name"] for item in json.loads(report.read_text())["install"])


def requires_at(revision: str) -> list[str]:
    """install_requires of setup.cfg at a git revision of this checkout."""
    text = subprocess.run(
        ["git", "show", f"{revision}:setup.cfg"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    cfg = configparser.ConfigParser()
    cfg.read_string(text)
    return [line.strip() for line in cfg["options"]["install_requires"].splitlines() if line.strip()]


def real_install(python: Path) -> str:
    """Install the core for real; the output of the import checks."""
    subprocess.run([str(python), "-m", "pip", "install", "-q", TORCH_PIN], check=True, cwd=ROOT)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "."], check=True, cwd=ROOT)
    code = (
        "import sys, cca_bench; light = not {'torch', 'sklearn'} & set(sys.modules); "
        "cca_bench.RegularizedCCA; print(f'import cca_bench light: {light}; cca_bench.RegularizedCCA: ok; '"
        "f'version {cca_bench.__version__}')"
    )
    done = subprocess.run([str(python), "-c", code], check=True, cwd="/", capture_output=True, text=True)
    return done.stdout.strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default="HEAD~", help="git revision whose install_requires is the baseline")
    ap.add_argument("--install", action="store_true", help="also install the core and check the import")
    ap.add_argument("--extras", action="store_true", help="also count each extra")
    ap.add_argument("--check", type=int, help="exit 1 when the core resolves more than this many distributions")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "REPORT_install_size.md")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        python = make_venv(Path(tmp) / "venv")
        core = resolve(python, ["."], Path(tmp) / "core.json")
        before = resolve(python, requires_at(args.before), Path(tmp) / "before.json")
        extras = {e: resolve(python, [f".[{e}]"], Path(tmp) / f"{e}.json") for e in EXTRAS} if args.extras else {}
        imported = real_install(python) if args.install else "(not run: --install)"
    lines = [
        f"# Install size ({date.today()}, Python {sys.version.split()[0]})",
        "",
        "`python benchmarks/install_size.py"
        + (" --extras" if args.extras else "")
        + (" --install" if args.install else "")
        + f" --before {args.before}`: distributions pip resolves in a "
        f"fresh virtualenv for `{TORCH_PIN}` plus the requirement (cca_bench itself included).",
        "",
        "| install | distributions |",
        "|---|---|",
        f"| `pip install .` (core) | {len(core)} |",
        f"| install_requires at `{args.before}` (cca_bench itself not counted) | {len(before)} |",
        *[f'| `pip install ".[{e}]"` | {len(names)} |' for e, names in extras.items()],
        "",
        f"Core: {', '.join(core)}",
        "",
        f"Import check in that venv: {imported}",
        "",
    ]
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    if args.check is not None and len(core) > args.check:
        print(f"the core install resolves {len(core)} distributions, more than {args.check}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
