"""Figures: R@K curves of runs and the canonical-correlation spectrum of a CCA model (matplotlib, Agg).

Functions return ``matplotlib.figure.Figure`` objects bound to an Agg canvas (no pyplot, no GUI backend,
no global state); :func:`cca_bench.results.write_figure` saves them. matplotlib is imported inside the
functions so the CLI starts fast.
"""
from __future__ import annotations

TASK_TITLES = {"image_annotation": "Image annotation (i2t)", "image_search": "Image search (t2i)"}


def _figure(width: float = 6.4, height: float = 4.2):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

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
        ax.set(title=task_title, xlabel="K (rank cut-off)", xlim=(1, max(len(c[task]) for _, c in series)),
               ylim=(0, 101))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("R@K (% of queries with rank <= K)")
    axes[1].legend(loc="lower right", fontsize="small")
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
        ax.plot(range(1, len(values) + 1), values, marker="o" if k <= 60 else None, markersize=3, linewidth=1.4,
                label=label)
    ax.set(title=title, xlabel="component (strongest first)", ylabel="correlation", ylim=(0, 1.02),
           xlim=(0.5, k + 0.5))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize="small")
    return fig
