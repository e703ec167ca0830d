"""The web app's routes: leaderboard, run, qualitative examples, search, images and the stored files.

Each route turns a :class:`~cca_bench.web.library.Library` lookup into template values; a UserError becomes a
page with its message (404 for what the roots do not hold, 400 for a bad query).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from cca_bench.errors import UserError
from cca_bench.web.common import MAX_UPLOAD_MB, example_rows
from cca_bench.web.common import lib as _lib
from cca_bench.web.common import wait as _wait
from cca_bench.web.kept import Loading
from cca_bench.web.library import Library, Missing

LOADING_WAIT_S = 2.0  # a page waits this long for a model being loaded, then shows a page that refreshes
EXAMPLE_K = 5  # hits per query on the qualitative page
# pages load scripts, styles and images from this server only (uploaded photos come back as data: URIs)
CSP = (
    "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def build_app(data_root: Path, results_root: Path, device: str = "auto", host: str = "127.0.0.1"):
    from flask import Flask, redirect, url_for

    from cca_bench.web import compare, curves, failures, figures, searching

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_UPLOAD_MB * 1024 * 1024
    app.config["LOADING_WAIT_S"] = LOADING_WAIT_S
    app.config["LOOPBACK_ONLY"] = is_loopback(host)  # then only requests addressed to a loopback name pass
    app.before_request(_refuse_foreign_requests)
    app.after_request(_headers)
    app.config["LIBRARY"] = Library(data_root, results_root, device)
    app.add_url_rule("/", view_func=leaderboard_page)
    app.add_url_rule("/leaderboard.csv", view_func=leaderboard_csv)
    app.add_url_rule("/compare", view_func=compare.compare_page)
    app.add_url_rule("/compare.png", view_func=compare.compare_png)
    app.add_url_rule("/wins", view_func=failures.wins_page)
    app.add_url_rule("/curves", view_func=curves.curves_page)
    app.add_url_rule("/curves/<dataset>.png", view_func=curves.curves_png)
    app.add_url_rule("/run/<stem>", view_func=run_page)
    app.add_url_rule("/run/<stem>/recall.png", view_func=figures.recall_png)
    app.add_url_rule("/model/<name>/training.png", view_func=figures.training_png)
    app.add_url_rule("/model/<name>/cv.png", view_func=figures.cv_png)
    app.add_url_rule("/run/<stem>/examples", view_func=examples_page)
    app.add_url_rule("/model/<name>", view_func=model_page)
    app.add_url_rule("/search", view_func=searching.search_page, methods=["GET", "POST"])
    app.add_url_rule("/image/<model>/<split>/<int:i>.png", view_func=image_png)
    app.add_url_rule("/run/<stem>/image/<int:i>.png", view_func=run_image_png)
    app.add_url_rule("/files/<kind>/<name>", view_func=stored_file)
    app.add_url_rule("/favicon.ico", view_func=lambda: redirect(url_for("static", filename="favicon.svg")))
    app.register_error_handler(UserError, _user_error)
    app.register_error_handler(Loading, _loading_page)
    app.register_error_handler(404, lambda e: _error_page(404, "Not found", "No page at this address."))
    app.register_error_handler(
        500,
        lambda e: _error_page(
            500,
            "Something went wrong",
            "The server failed on this page; the other pages still work. Please report "
            "the page's address and what the server printed.",
        ),
    )
    app.register_error_handler(
        413, lambda e: _error_page(413, "Upload too large", f"Photos may be at most {MAX_UPLOAD_MB} MB.")
    )
    app.jinja_env.filters["cell"] = cell
    app.jinja_env.filters["knob"] = _knob
    app.jinja_env.filters["rank"] = rank_text
    return app


def is_loopback(host: str) -> bool:
    """``localhost``, any address of 127.0.0.0/8, or ``::1`` (with or without brackets)."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_name(host_header: str) -> str:
    """The name of a Host header without its port: ``127.0.0.2:8000`` -> ``127.0.0.2``, ``[::1]:80`` -> ``::1``."""
    if host_header.startswith("["):
        return host_header[1 : host_header.find("]")] if "]" in host_header else host_header
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def _refuse_foreign_requests():
    """400 for a request addressed to a name that is not loopback while the app listens on loopback (a page
    elsewhere cannot reach it by rebinding a domain name to 127.0.0.1); 403 for a POST that another site's page
    sends (its Origin or Sec-Fetch-Site header says so; clients that send neither, like curl, are no page)."""
    from flask import current_app, request

    if current_app.config["LOOPBACK_ONLY"] and not is_loopback(host_name(request.host)):
        return _error_page(
            400, "Wrong address", f"This server answers only at a loopback address, not at {request.host!r}."
        )
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        origin, site = request.headers.get("Origin"), request.headers.get("Sec-Fetch-Site")
        same = origin is None or origin == request.host_url.rstrip("/")
        if not same or site not in (None, "same-origin", "none"):
            return _error_page(403, "Refused", "A form of another site may not post to this server.")
    return None


def _headers(response):
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    return response


def _user_error(e: UserError):
    if isinstance(e, Missing):
        return _error_page(404, "Not found", str(e))
    return _error_page(400, "Cannot do that", str(e))


def _loading_page(e: Loading):
    """What a page shows while the model it needs is loaded in the background: it reloads itself."""
    from flask import render_template, request

    return render_template("loading.html", what=e.what, url=request.full_path.rstrip("?")), 202


def _error_page(status: int, title: str, message: str):
    from flask import render_template

    return render_template("error.html", title=title, message=message), status


def rank_text(value) -> str:
    """A 1-based rank as pages show it: whole ranks as integers, expected ranks of tied items to 0.1 (2.5)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "-" if value is None else str(value)
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _knob(value) -> str:
    from cca_bench.plots import knob_value

    return knob_value(value)


def cell(value, column: str = "") -> str:
    """A table cell as ``compare`` prints it: numbers to 0.1, median ranks (``column`` ending in "MedR") as
    integers, missing values as '-'."""
    from cca_bench.results import fmt_value

    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return fmt_value(value, "MedR" if column.endswith("MedR") else "")
    return "-" if value is None else str(value)


# ------------------------------------------------------------------------------------------------ leaderboard


def _leaderboard_frame(lib: Library, args) -> tuple:
    """(compare frame filtered and sorted as the URL asks, runs, unreadable run files, filter choices, state)."""
    from cca_bench.results import compare_frame, published_frame, select_rows
    from cca_bench.web.tables import RSUM, sort_frame

    runs, bad = lib.runs()
    state = {
        "method": args.get("method") or None,
        "features": args.get("features") or None,
        "published": args.get("published") == "1",
        "sort": args.get("sort") or RSUM,
        "order": "asc" if args.get("order") == "asc" else "desc",
        "view": args.get("view") or "runs",
    }
    frame = select_rows(
        compare_frame(list(runs.values()), published_frame()), method=state["method"], all_published=state["published"]
    )
    choices = {
        "method": sorted(set(frame["Family"].dropna())) if len(frame) else [],
        "features": sorted(set(frame["Features"].dropna())) if len(frame) else [],
    }
    if state["features"] and len(frame):
        frame = frame[frame["Features"].eq(state["features"])]
    if len(frame):
        frame = sort_frame(frame, state["sort"], state["order"] == "desc")
    return frame, runs, bad, choices, state


def leaderboard_page():
    from flask import render_template, request

    from cca_bench.web.tables import at_chance, leaderboard_groups, model_matrix

    lib = _lib()
    frame, runs, bad, choices, state = _leaderboard_frame(lib, request.args)
    marks, marks_note = _marks(lib, frame, list(runs.values())) if len(frame) else ({}, None)
    chance = {r["_file"]: c for r in runs.values() if (c := at_chance(r)) is not None}
    groups = leaderboard_groups(frame, marks, chance) if len(frame) else []
    matrix = model_matrix(frame) if len(frame) and state["view"] == "models" else None
    return render_template(
        "leaderboard.html",
        groups=groups,
        matrix=matrix,
        n_runs=len(runs),
        bad=bad,
        marks_note=marks_note,
        runs_dir=lib.results_root / "runs",
        choices=choices,
        state=state,
        query=request.query_string.decode("ascii", "replace"),
    )


def _marks(lib: Library, frame, runs: list[dict]) -> tuple[dict, str | None]:
    """(:func:`cca_bench.results.significance_marks` of the shown runs (paired tests on their stored ranks),
    computed once per set of run files and kept; None, or why there are none)."""
    from cca_bench.results import significance_marks

    shown = sorted(f for f in frame["_file"].dropna() if isinstance(f, str))
    key = ("marks", tuple((f, lib.stamp(f)) for f in shown))
    try:
        return lib.computed(key, lambda: significance_marks(frame, [r for r in runs if r["_file"] in set(shown)])), None
    except UserError as e:  # e.g. a run scored on a subset of captions beside the split's runs: no error page
        return {}, f"No significance marks: {e}"


def leaderboard_csv():
    """The leaderboard as shown (filters and sort of the URL) as a CSV download."""
    from flask import Response, request

    from cca_bench.results import compare_csv

    frame = _leaderboard_frame(_lib(), request.args)[0]
    return Response(
        compare_csv(frame) if len(frame) else "",
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="leaderboard.csv"'},
    )


# ------------------------------------------------------------------------------------------------ run pages


def run_page(stem: str):
    from flask import render_template

    from cca_bench.results import METRIC_COLUMNS, TASKS
    from cca_bench.web.figures import training_history
    from cca_bench.web.tables import at_chance

    lib = _lib()
    run = lib.run(stem)
    model = run.get("model")
    has_model = lib.has_model(model)
    config = lib.model_config(model) if has_model else {}
    fit = (config.get("timings") or {}).get("fit") if isinstance(config.get("timings"), dict) else None
    cv = lib.cv_report(model) if has_model else None
    return render_template(
        "run.html",
        run=run,
        stem=stem,
        model=model,
        has_model=has_model,
        spectrum=has_model and lib.figure(model, "spectrum") is not None,
        tasks=TASKS,
        metric_columns=METRIC_COLUMNS,
        run_file=Path(run["_file"]).name,
        fit_s=fit if isinstance(fit, (int, float)) else None,
        train_oov=config.get("oov_rate"),
        training=training_history(config) is not None,
        cv=cv,
        chance=at_chance(run),
    )


def examples_page(stem: str):
    """What the run retrieved: sampled and worst queries from its ranks file's top-10 (every run, evaluate runs
    included); runs stored before the top-10 was kept fall back to their saved model, when there is one."""
    from flask import render_template

    from cca_bench.web import failures

    lib = _lib()
    run = lib.run(stem)
    folds = int(run.get("folds") or 1)  # the run's protocol: COCO 1k ranks within 5 folds of 1,000 images
    try:
        s = failures.stored(lib, run)
        ex, lab = failures.example_entries(s, k=EXAMPLE_K), s.labels
        img = {"run": lab.image_run}
        n_images = s.ranks.n_images
    except UserError as e:
        if not lib.has_model(run.get("model")):
            raise Missing(f"run {stem} has no examples: {e}") from None
        ex = lib.examples(run["model"], run["split"], run["distance"], folds, wait=_wait())
        lab = lib.gallery(run["model"], run["split"]).split
        img = {"model": run["model"], "split": run["split"]} if lab.loader is not None else {}
        n_images = lab.n_images
    sections = {task: {kind: example_rows(lab, ex[task][kind], task) for kind in ("sample", "worst")} for task in ex}
    return render_template(
        "examples.html",
        run=run,
        stem=stem,
        img=img,
        sections=sections,
        k=EXAMPLE_K,
        folds=folds,
        fold_size=n_images // folds,
        n_images=n_images,
    )


def model_page(name: str):
    from flask import render_template

    lib = _lib()
    if not lib.has_model(name):
        raise Missing(f"no saved model named {name!r} under {lib.results_root / 'models'}: run `generate` first")
    config = lib.model_config(name)
    runs = sorted(stem for stem, r in lib.runs()[0].items() if r.get("model") == name)
    return render_template(
        "model.html",
        name=name,
        config=config,
        runs=runs,
        spectrum=lib.figure(name, "spectrum") is not None,
        splits=lib.splits(name),
    )


# ------------------------------------------------------------------------------------------------ files


def image_png(model: str, split: str, i: int):
    from flask import Response

    return Response(_lib().image_png(model, split, i), mimetype="image/png", headers={"Cache-Control": "max-age=3600"})


def run_image_png(stem: str, i: int):
    """Image ``i`` of the split a run was scored on (pages of runs without a saved model show it)."""
    from flask import Response

    lib = _lib()
    return Response(
        lib.run_image_png(lib.run(stem), i), mimetype="image/png", headers={"Cache-Control": "max-age=3600"}
    )


def stored_file(kind: str, name: str):
    """A run JSON, or a saved model's JSON, safetensors or figure, from the results root."""
    from flask import send_file

    path = _lib().file(kind, name)
    return send_file(path, as_attachment=name.endswith(".safetensors"))
