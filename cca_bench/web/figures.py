"""The web app's figures, drawn by :mod:`cca_bench.plots` once per set of files they come from and kept
(:meth:`cca_bench.web.library.Library.figure_png`): a run's R@K curves, a VSE model's training curves, a CV
grid as a heat map."""

from __future__ import annotations

from cca_bench.web.library import Missing


def curve_label(run: dict) -> str:
    """A run's name in figure legends and on the compare page: method, params with the tag, features, distance."""
    from cca_bench.results import _params_cell

    return " ".join(filter(None, [run["method"], _params_cell(run), run["features"], run["distance"]]))


def _png(png: bytes):
    from flask import Response

    return Response(png, mimetype="image/png", headers={"Cache-Control": "max-age=60"})


def recall_png(stem: str):
    """The run's R@K curves (K = 1..50) drawn by :func:`cca_bench.plots.recall_figure`."""
    from cca_bench.plots import recall_figure
    from cca_bench.web.common import lib as _lib

    lib = _lib()
    run = lib.run(stem)
    if not run.get("recall_curve"):
        raise Missing(f"run {stem} stored no R@K curve (run run_benchmark again to store one)")
    title = f"{run['dataset']} / {run['split']}: {run['features']}"
    return _png(
        lib.figure_png(
            ("recall", stem, lib.stamp(run["_file"])),
            lambda: recall_figure([(curve_label(run), run["recall_curve"])], title),
        )
    )


def training_history(config: dict) -> list[dict] | None:
    """A trained model's per-epoch ``[{"epoch", "loss", "val_rsum"}]`` (VSE's ``history_``), or None."""
    history = config.get("history_")
    ok = (
        isinstance(history, list)
        and history
        and all(
            isinstance(h, dict)
            and isinstance(h.get("epoch"), int)
            and isinstance(h.get("loss"), (int, float))
            and (h.get("val_rsum") is None or isinstance(h["val_rsum"], (int, float)))
            for h in history
        )
    )
    return history if ok else None


def training_png(name: str):
    from cca_bench.plots import training_figure
    from cca_bench.web.common import lib as _lib

    lib = _lib()
    if not lib.has_model(name):
        raise Missing(f"no saved model named {name!r}")
    history = training_history(lib.model_config(name))
    if history is None:
        raise Missing(f"the model {name} stored no training curves (only trained rankers such as vse do)")
    key = ("training", name, lib.stamp(lib.file("models", f"{name}.json")))
    return _png(lib.figure_png(key, lambda: training_figure(history, f"Training of {name}")))


def cv_png(name: str):
    from cca_bench.plots import cv_figure
    from cca_bench.web.common import lib as _lib

    lib = _lib()
    report = lib.cv_report(name)
    if report is None:
        raise Missing(f"the model {name} has no CV report (generate --cv writes one)")
    key = ("cv", name, lib.stamp(lib.file("cv", f"{name}.json")))
    try:
        return _png(lib.figure_png(key, lambda: cv_figure(report, "CV grid on val: the chosen point circled")))
    except (KeyError, ValueError, TypeError) as e:  # a row or chosen point that the grid does not hold
        raise Missing(f"cannot draw cv/{name}.json as a heat map ({type(e).__name__}: {e})") from None
