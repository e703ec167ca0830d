"""What `list` shows: every dataset, encoder and method, and whether the files each needs are present."""

from __future__ import annotations

from pathlib import Path


def _status(base: Path, name: str, meta: dict) -> tuple[str, str]:
    """(present?, where) for a registry entry: for one that reads its folder in any dataset layout, the
    layouts loading would use (``meta["layouts"](data_root)``); else its expected files (any one suffices)."""
    files, layouts = meta.get("files", []), meta.get("layouts")
    if meta.get("builtin", False):
        return "builtin", "installed with the package"
    if layouts is not None:
        found = layouts(base)
        if not found:
            return "no", f"{base / files[0]} or another dataset layout in {base / name} (data/README.md)"
        several = " (several: choose one with -D layout=NAME)" if len(found) > 1 else ""
        return "yes", f"{base / name}: " + "; ".join(
            f"{layout} layout ({', '.join(f[:3])}{', ...' if len(f) > 3 else ''})" for layout, f in found.items()
        ) + several
    if not files:
        return "-", ""
    found = [f for f in files if (base / f).exists()]
    return ("yes" if found else "no"), ", ".join(str(base / f) for f in (found or files))


WIDTH = 120  # columns of the listing: a table of what each entry is, then where its files go, wrapped


def _section(title: str, registry, base: Path) -> str:
    import textwrap

    from tabulate import tabulate

    rows, files = [], []
    for name in registry.names():
        meta = registry.meta(name)
        present, where = _status(base, name, meta)
        aliases = meta.get("aliases", [])
        rows.append([name + (f" ({', '.join(aliases)})" if aliases else ""), present, meta.get("help", "")])
        if where and present != "builtin":
            files.append(
                textwrap.fill(
                    f"- {name}: {where}", WIDTH, subsequent_indent="  ", break_long_words=False, break_on_hyphens=False
                )
            )
    widest = max(len(r[0]) for r in rows)
    table = tabulate(
        rows, ["name", "present", "what"], tablefmt="github", maxcolwidths=[None, None, WIDTH - widest - 24]
    )
    return f"## {title}\n\n{table}" + ("\n\nFiles expected:\n" + "\n".join(files) if files else "")


def catalog(data_root: Path) -> str:
    """Markdown listing of datasets (with user folders found under the data root), encoders and methods."""
    from cca_bench.datasets import folder_layouts
    from cca_bench.datasets import load_all as load_datasets
    from cca_bench.features import load_all as load_features
    from cca_bench.methods import load_all as load_methods
    from cca_bench.registry import DATASETS, IMAGE_ENCODERS, METHODS, TEXT_ENCODERS

    load_datasets(), load_features(), load_methods()
    root = Path(data_root)
    parts = [f"data root: {root.resolve()}\n", _section("Datasets", DATASETS, root)]
    folders = folder_layouts(root)
    if folders:
        parts.append(
            "Dataset folders found under the data root (usable by name, layout in brackets): "
            + ", ".join(f"{name} ({' or '.join(layouts)})" for name, layouts in folders.items())
        )
    parts += [
        _section("Text encoders (FEATURES = TEXT_IMAGE)", TEXT_ENCODERS, root),
        _section("Image encoders", IMAGE_ENCODERS, root),
        _section("Methods", METHODS, root),
    ]
    return "\n\n".join(parts) + "\n"
