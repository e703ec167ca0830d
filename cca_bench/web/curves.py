"""The curves page: the stored data-efficiency curves (``curve``) of each dataset, their tables and one figure
per dataset (R-sum against training pairs, log x, interval bands; :func:`cca_bench.plots.curve_figure`)."""

from __future__ import annotations


def _curves(lib) -> dict:
    """{dataset: the newest curve of each method/features/split} of the results root."""
    from cca_bench.curves import latest_curves, load_curves

    by_dataset: dict = {}
    for c in load_curves(lib.results_root):
        by_dataset.setdefault(c["dataset"], []).append(c)
    return {d: latest_curves(cs) for d, cs in sorted(by_dataset.items())}


def curves_page():
    """Every dataset's curves: a figure and, per curve, its points with pairs, R-sum, seed sd and interval."""
    from flask import render_template

    from cca_bench.curves import curve_label
    from cca_bench.web.common import lib as _lib

    groups = _curves(_lib())
    return render_template("curves.html", groups=groups, label=curve_label)


def curves_png(dataset: str):
    """The figure of one dataset's curves, drawn once per set of curve files."""
    from cca_bench.curves import curve_label
    from cca_bench.plots import curve_figure
    from cca_bench.web.common import lib as _lib
    from cca_bench.web.figures import _png
    from cca_bench.web.library import Missing

    lib = _lib()
    curves = _curves(lib).get(dataset)
    if not curves:
        raise Missing(f"no stored curves of {dataset}")
    key = ("curves", dataset, tuple(lib.stamp(c["_file"]) for c in curves))
    return _png(
        lib.figure_png(
            key, lambda: curve_figure([(curve_label(c), c["points"]) for c in curves], f"{dataset}: data efficiency")
        )
    )
