"""The shape of the house (docs: /ARCHITECTURE picture): the package's import graph, lazy imports inside functions
included, has no circle, and no module imports one from a layer above its own."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "cca_bench"

# Lowest layer first. A module belongs to the layer of the longest name below that matches it (a package name
# covers its submodules; "cca_bench" itself only the package's __init__). A module may import its own layer
# and any layer below, never one above. Place every new module here.
LAYERS = [
    (
        "base",
        [
            "cca_bench._version",
            "cca_bench.errors",
            "cca_bench.extras",
            "cca_bench.registry",
            "cca_bench.config",
            "cca_bench.fsio",
            "cca_bench.cache_entries",
            "cca_bench.checks",
            "cca_bench.plots",
            "cca_bench.cells",
        ],
    ),
    (
        "numerics",
        [
            "cca_bench.linalg",
            "cca_bench.ties",
            "cca_bench.metrics",
            "cca_bench.stats",
            "cca_bench.resample_cache",
            "cca_bench.kernel_maps",
            "cca_bench.power",
            "cca_bench.seed_stats",
            "cca_bench.sample_size",
            "cca_bench.api",
            "cca_bench.similarity",
            "cca_bench.retrieved",
            "cca_bench.topk",
            "cca_bench.sparse_rows",
            "cca_bench.running_topk",
        ],
    ),
    ("datasets", ["cca_bench.datasets"]),
    ("features", ["cca_bench.features"]),
    ("methods", ["cca_bench.methods"]),
    ("cv", ["cca_bench.cv"]),
    ("results", ["cca_bench.results", "cca_bench.runrecord", "cca_bench.marks", "cca_bench.verdict"]),
    (
        "glue",
        [
            "cca_bench.evaluation",
            "cca_bench.benchmark",
            "cca_bench.external",
            "cca_bench.catalog",
            "cca_bench.coco_extended",
            "cca_bench.curves",
        ],
    ),
    ("search", ["cca_bench.search"]),
    ("web", ["cca_bench.web"]),
    ("cli", ["cca_bench.__main__", "cca_bench.cli"]),
    # the package root re-exports the public API (estimators, evaluation) by name, imported on first use
    ("root", ["cca_bench"]),
]


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the package."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imported(module: str, path: Path, known: dict) -> set[str]:
    """The package's modules that ``module`` imports anywhere in its file (top level or inside functions)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            # `from pkg import submodule` imports the submodule; `from mod import name` the module
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                out.add(name)
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    return {m: imported(m, p, known) for m, p in known.items()}


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def layer(module: str) -> int:
    matches = [
        (len(prefix), i)
        for i, (_, prefixes) in enumerate(LAYERS)
        for prefix in prefixes
        if module == prefix or (prefix != "cca_bench" and module.startswith(prefix + "."))
    ]
    assert matches, f"{module} has no layer in tests/test_architecture.py LAYERS: place it there"
    return max(matches)[1]


def test_the_graph_sees_lazy_imports():
    """The graph reads imports inside functions too (the circles of the last release were lazy ones)."""
    edges = graph()
    assert "cca_bench.benchmark" in edges["cca_bench.cli.run_benchmark"]  # imported inside the command functions only
    assert "cca_bench.features.distributed" in edges["cca_bench.features.image_pipeline"]


def test_circles_are_found():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles():
    assert circles(graph()) == []


def test_no_module_imports_a_layer_above_its_own():
    upward = [
        f"{m} ({LAYERS[layer(m)][0]}) imports {t} ({LAYERS[layer(t)][0]})"
        for m, targets in sorted(graph().items())
        for t in sorted(targets)
        if layer(t) > layer(m)
    ]
    assert upward == []


# The orchestrator composes the layers' options (benchmark.Options); below it a module takes only its own layer's
# object (config.Locations, features.options.FeatureOptions, evaluation.RunOptions) or plain arguments. Its peers
# in the glue layer (external), and search, web and the CLI above it, build or hold the composition.
ORCHESTRATOR = ["cca_bench.benchmark", "cca_bench.external", "cca_bench.catalog"]


def below_the_orchestrator() -> dict[str, Path]:
    """The modules below the orchestrator: every layer under glue, and evaluation (glue that benchmark calls)."""
    glue = [name for name, _ in LAYERS].index("glue")
    return {
        m: p for m, p in modules().items() if m not in ORCHESTRATOR and (layer(m) < glue or m == "cca_bench.evaluation")
    }


def whole_options_uses(path: Path) -> list[str]:
    """Where ``path`` names ``benchmark.Options``: an import of it, the attribute, or a docstring, comment or
    annotation that says it takes one (the duck typing this split removed was documented that way)."""
    source = path.read_text(encoding="utf-8")
    lines = enumerate(source.splitlines(), 1)
    found = [f"line {i}: {line.strip()}" for i, line in lines if "benchmark.Options" in line]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("benchmark"):
            found += [f"line {node.lineno}: imports {a.name} from {node.module}" for a in node.names]
    return found


def test_no_module_below_the_orchestrator_names_the_whole_options():
    """Planted bugs caught: ``from cca_bench.benchmark import Options`` inside evaluation.score (the glue layer
    allows the import), and a features function documented as taking "any object with the fields of
    benchmark.Options" (the duck typing of the last release)."""
    below = below_the_orchestrator()
    assert {"cca_bench.evaluation", "cca_bench.features.pipelines", "cca_bench.cv"} <= set(below)
    offences = {m: whole_options_uses(p) for m, p in sorted(below.items())}
    assert {m: uses for m, uses in offences.items() if uses} == {}


# docs/architecture.md: its module table is rendered from LAYERS and each module's docstring, so the map a
# contributor reads cannot drift from the layers this file enforces (`python tests/test_architecture.py` rewrites it).
DOC = PACKAGE.parent / "docs" / "architecture.md"
DOC_MARK = "<!-- the table below is written by `python tests/test_architecture.py` from LAYERS and the docstrings -->"


def summary(path: Path) -> str:
    """The first paragraph of a module's docstring on one line, ``|`` escaped for a markdown cell."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return " ".join(doc.split("\n\n")[0].split()).replace("|", "\\|")


def module_table() -> str:
    """One row per module, lowest layer first, in LAYERS order and then by name within a package."""
    known, rows = modules(), ["| layer | module | what it does |", "|---|---|---|"]
    for name, prefixes in LAYERS:
        for prefix in prefixes:
            subs = (
                [prefix]
                if prefix == "cca_bench"
                else sorted(m for m in known if m == prefix or m.startswith(prefix + "."))
            )
            rows += [
                f"| {name} | `{m}` | {summary(known[m])} |"
                for m in subs
                if layer(m) == [n for n, _ in LAYERS].index(name)
            ]
    return "\n".join(rows) + "\n"


def test_architecture_doc_lists_every_module_in_its_layer():
    """docs/architecture.md's table equals the rendering of LAYERS and the docstrings. Planted bug it caught: a
    module added to the package (placed in LAYERS) without rewriting the doc."""
    text = DOC.read_text(encoding="utf-8")
    assert DOC_MARK in text, f"{DOC}: the marker line is missing"
    assert text.split(DOC_MARK, 1)[1].strip() == module_table().strip(), "run `python tests/test_architecture.py`"


if __name__ == "__main__":
    head = DOC.read_text(encoding="utf-8").split(DOC_MARK, 1)[0] if DOC.is_file() else "# Architecture\n\n"
    DOC.write_text(head + DOC_MARK + "\n\n" + module_table(), encoding="utf-8")
    print(f"wrote {DOC}")
