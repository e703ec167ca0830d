"""Figures: R@K curves of runs and the canonical-correlation spectrum of a CCA model (matplotlib, Agg).

Functions return ``matplotlib.figure.Figure`` objects bound to an Agg canvas (no pyplot, no GUI backend,
no global state); :func:`cca_bench.results.write_figure` saves them. matplotlib is imported inside the
functions so the CLI starts fast.
"""

from __future__ import annotations

from cca_bench.extras import require

TASK_TITLES = {"image_annotation": "Image annotation (i2t)", "image_search": "Image search (t2i)"}


def _figure(width: float = 6.4, height: float = 4.2):
    FigureCanvasAgg = require("matplotlib.backends.backend_agg", "figures").FigureCanvasAgg
    Figure = require("matplotlib.figure", "figures").Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def recall_figure(series: list[tuple[str, dict]], title: str):
    """R@K against K (1..K_max) for each (label, {"image_annotation": [...], "image_search": [...]}).

    One panel per task, one line per series; y is the percentage of queries with rank <= K.
    """
    fig = _figure(11, 4.4)
    axes = fig.subplots(1, 2, sharey=True)
    for ax, (task, task_title) in zip(axes, TASK_TITLES.items()):
        for label, curves in series:
            ax.plot(range(1, len(curves[task]) + 1), curves[task], label=label, linewidth=1.6)
        for k in (1, 5, 10):
            ax.axvline(k, color="0.85", linewidth=0.8, zorder=0)
        ax.set(
            title=task_title, xlabel="K (rank cut-off)", xlim=(1, max(len(c[task]) for _, c in series)), ylim=(0, 101)
        )
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("R@K (% of queries with rank <= K)")
    # below both panels, outside the axes: a legend inside one would cover the curves of many runs
    fig.legend(
        *axes[0].get_legend_handles_labels(),
        loc="outside lower center",
        fontsize="small",
        ncol=1 if len(series) > 3 else len(series),
        frameon=False,
    )
    fig.set_figheight(4.4 + 0.22 * (len(series) if len(series) > 3 else 1))
    fig.suptitle(title)
    return fig


def spectrum_figure(series, title: str):
    """Correlation (y) of each component (x), strongest first, one line per ``{label: (k,) values}``.

    A bare (k,) array is drawn as "canonical correlation". RegularizedCCA passes its ridge-shrunk canonical
    correlations and the correlations of its projections, which differ when reg > 0.
    """
    if not isinstance(series, dict):
        series = {"canonical correlation": series}
    fig = _figure()
    ax = fig.subplots()
    k = max(len(v) for v in series.values())
    for label, values in series.items():
        ax.plot(
            range(1, len(values) + 1), values, marker="o" if k <= 60 else None, markersize=3, linewidth=1.4, label=label
        )
    ax.set(title=title, xlabel="component (strongest first)", ylabel="correlation", ylim=(0, 1.02), xlim=(0.5, k + 0.5))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    return fig


def training_figure(history: list[dict], title: str):
    """A trained ranker's curves (VSE): mean loss per pair (left axis) and validation R-sum (right axis) against
    the epoch, from ``history_`` = ``[{"epoch", "loss", "val_rsum"}]``; the kept (best) epoch marked."""
    fig = _figure(7.5, 4.2)
    ax = fig.subplots()
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["loss"] for h in history], color="tab:blue", marker="o", label="training loss per pair")
    ax.set(xlabel="epoch", ylabel="training loss per pair", title=title)
    ax.grid(alpha=0.3)
    handles = ax.get_legend_handles_labels()[0]
    val = [(h["epoch"], h["val_rsum"]) for h in history if h.get("val_rsum") is not None]
    if val:
        right = ax.twinx()
        right.plot(*zip(*val), color="tab:orange", marker="s", label="validation R-sum")
        best = max(val, key=lambda p: p[1])
        right.plot(*best, marker="*", markersize=16, color="tab:red", linestyle="none", label=f"kept: epoch {best[0]}")
        right.set_ylabel("validation R-sum")
        handles += right.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="best")
    return fig


def cv_figure(report: dict, title: str):
    """The CV grid as a heat map of the selection score (R-sum, or the sum of median ranks) over the two knobs
    with the most values, the other knobs at their chosen values; the chosen point is circled. A knob value of
    None (e.g. kcca's ``landmarks``: the method's default) is labelled "default"."""
    import numpy as np

    grid, best = report["grid"], report["best"]
    knobs = sorted(grid, key=lambda k: -len(grid[k]))[:2]
    if len(knobs) < 2:
        knobs = knobs + ["_"]
    xs, ys = list(grid[knobs[0]]), list(grid.get(knobs[1], [None]))
    score = "rsum" if report["select"] == "rsum" else "medr_sum"
    fixed = {k: best[k] for k in grid if k not in knobs}
    values = np.full((len(ys), len(xs)), np.nan)
    for row in report["rows"]:
        if all(row.get(k) == v for k, v in fixed.items()) and row[knobs[0]] in xs:
            values[ys.index(row.get(knobs[1])) if knobs[1] in grid else 0, xs.index(row[knobs[0]])] = row[score]
    fig = _figure(6.4, 4.6)
    ax = fig.subplots()
    image = ax.imshow(values, cmap="viridis" if score == "rsum" else "viridis_r", aspect="auto", origin="lower")
    light = image.norm(values) > 0.5 if score == "rsum" else image.norm(values) < 0.5  # viridis is light at the top
    for (i, j), v in np.ndenumerate(values):
        if not np.isnan(v):  # dark text on the light cells, white on the dark ones
            ax.text(
                j,
                i,
                f"{v:.1f}" if score == "rsum" else f"{v:g}",
                ha="center",
                va="center",
                color="black" if light[i, j] else "white",
                fontweight="bold",
            )
    bx, by = xs.index(best[knobs[0]]), ys.index(best[knobs[1]]) if knobs[1] in grid else 0
    ax.plot(bx, by, marker="o", markersize=30, markerfacecolor="none", markeredgecolor="red", markeredgewidth=2.5)
    ax.set(
        xticks=range(len(xs)),
        xticklabels=[knob_value(x) for x in xs],
        xlabel=knobs[0],
        yticks=range(len(ys)),
        yticklabels=["" if knobs[1] == "_" else knob_value(y) for y in ys],
        ylabel="" if knobs[1] == "_" else knobs[1],
        title=title + "".join(f"\n{k} = {knob_value(v)} (chosen)" for k, v in fixed.items()),
    )
    fig.colorbar(image, ax=ax, label="validation R-sum" if score == "rsum" else "sum of median ranks (lower is better)")
    return fig


def knob_value(value) -> str:
    """A CV knob's value as an axis label: numbers short (``0.001``, ``2000``), None as "default"."""
    if value is None:
        return "default"
    return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def curve_figure(series: list[tuple[str, list[dict]]], title: str):
    """R-sum against training pairs (log x) for each (label, curve points), with the 95% image-level bootstrap
    interval of each point as a band (:mod:`cca_bench.curves`). A point's x is its mean number of pairs over
    seeds; its y the seed-mean R-sum."""
    import numpy as np

    fig = _figure(6.8, 4.4)
    ax = fig.subplots()
    for label, points in series:
        x = [float(np.mean(p["n_pairs"])) for p in points]
        (line,) = ax.plot(x, [p["rsum"] for p in points], marker="o", linewidth=1.6, label=label)
        if all(p.get("rsum_ci") for p in points):
            ax.fill_between(
                x,
                [p["rsum_ci"][0] for p in points],
                [p["rsum_ci"][1] for p in points],
                color=line.get_color(),
                alpha=0.18,
                linewidth=0,
            )
    ax.set_xscale("log")
    ax.set(xlabel="training pairs (log scale)", ylabel="R-sum (R@1+R@5+R@10, both directions)", title=title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right", fontsize="small")
    return fig
