"""What the CLI repairs, skips or reports instead of failing: damaged cache entries, broken run files, huge
images, OOV rate, images missing on disk, -q everywhere."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from cca_bench.__main__ import main

SMALL = ["-D", "n_train=60", "-D", "n_val=10", "-D", "n_test=20", "-q"]
FEAT = "glove50_tinyimage"
RUN = ["run_benchmark", "cca", "shapes", "test", FEAT, *SMALL]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    base = tmp_path_factory.mktemp("fitted")
    roots = ["--data-root", str(base / "data"), "--results-root", str(base / "results")]
    assert main(["generate", "cca", "shapes", FEAT, "--reg", "1e-2", *SMALL, *roots]) == 0
    assert main([*RUN, *roots]) == 0
    return base


@pytest.fixture
def work(fitted, tmp_path):
    shutil.copytree(fitted, tmp_path / "w")
    w = tmp_path / "w"
    return w, ["--data-root", str(w / "data"), "--results-root", str(w / "results")]


def run_record(w) -> dict:
    return json.loads(next((w / "results" / "runs").glob("*.json")).read_text())


@pytest.mark.parametrize("damage", ["zero bytes", "truncated", "wrong rows", "not npy", "key json garbage"])
def test_damaged_cache_entries_are_recomputed(damage, work, capsys):
    w, roots = work
    metrics = run_record(w)["metrics"]
    for npy in (w / "data" / "cache").glob("shapes_test_*.npy"):
        meta = npy.with_suffix(".json")
        data = npy.read_bytes()
        {
            "zero bytes": lambda: npy.write_bytes(b""),
            "truncated": lambda: npy.write_bytes(data[: len(data) // 2]),
            "wrong rows": lambda: np.save(npy, np.load(npy)[:3]),
            "not npy": lambda: npy.write_bytes(b"PK\x03\x04 not an array"),
            "key json garbage": lambda: meta.write_text("{"),
        }[damage]()
    capsys.readouterr()
    assert main([*RUN, *roots]) == 0, capsys.readouterr().err
    assert run_record(w)["metrics"] == metrics
    for npy in (w / "data" / "cache").glob("shapes_test_*.npy"):
        assert np.load(npy).shape[0] in (20, 100)  # replaced by a sound entry (20 images, 100 captions)


def test_broken_run_files_are_skipped_with_a_warning_and_the_rest_tabled(work, capsys):
    w, roots = work
    runs = w / "results" / "runs"
    good = run_record(w)
    (runs / "empty.json").write_text("")
    (runs / "utf16.json").write_bytes('{"a": 1}'.encode("utf-16"))
    (runs / "list.json").write_text("[1, 2]")
    (runs / "partial.json").write_text(json.dumps({"method": "cca", "dataset": "shapes"}))
    (runs / "badmetric.json").write_text(
        json.dumps(good | {"metrics": {"image_annotation": {"R@1": "high"}, "image_search": {}}})
    )
    capsys.readouterr()
    assert main(["compare", *roots]) == 0
    out, err = capsys.readouterr()
    warnings = [line for line in err.splitlines() if line.startswith("warning: skipped run file")]
    assert len(warnings) == 5 and len(err.splitlines()) == 6  # + the "written:" status line
    assert "partial.json: no 'split'" in err and "badmetric.json: image_annotation R@1 is not a number" in err
    assert "## shapes[n_test=20,n_train=60,n_val=10] / test / protocol full" in out


def test_quiet_works_on_every_command(work, capsys):
    w, roots = work
    for argv in (
        ["compare", "-q"],
        ["list", "-q"],
        [*RUN],
        ["search", "cca", "shapes", FEAT, "--text", "a red circle", "--html", str(w / "p.html"), *SMALL],
    ):
        capsys.readouterr()
        assert main([*argv, *roots]) == 0
        assert capsys.readouterr().err == "", argv


def karpathy_folder(w, n=6, missing=(), huge=None):
    """A small Karpathy-format dataset ``mine`` (train and test) of solid-colour PNGs; one word per
    caption ('zzqx') has no GloVe vector."""
    folder = w / "data" / "mine"
    (folder / "images").mkdir(parents=True)
    colours = [
        "red",
        "blue",
        "black",
        "white",
        "green",
        "yellow",
    ]  # black and white apart: their test captions would tie
    images = []
    for k in range(n):
        c = colours[k % len(colours)]
        if k not in missing:
            size = (100, 100) if k == huge else (16, 16)
            Image.new("RGB", size, c).save(folder / "images" / f"{k}.png")
        images.append(
            {
                "filename": f"{k}.png",
                "split": "test" if k >= n - 2 else "train",
                "sentences": [{"raw": f"a {c} square zzqx"}],
            }
        )
    (folder / "dataset.json").write_text(json.dumps({"images": images}))
    return folder


def test_decompression_bomb_warning_is_one_line_naming_the_file(work):
    """In a real process (pytest records warnings itself): the CLI prints the warning once, as one line."""
    import os
    import subprocess
    import sys

    w, roots = work
    Image.new("RGB", (100, 100), "red").save(w / "huge.png")
    argv = ["search", "cca", "shapes", FEAT, "--image", str(w / "huge.png"), *SMALL, *roots]
    code = (
        "import sys; from PIL import Image; from cca_bench.__main__ import main\n"
        "Image.MAX_IMAGE_PIXELS = 6000  # 100 x 100 = 10,000 pixels: above the limit, not twice above\n"
        f"sys.exit(main({argv!r}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()}
    )
    assert done.returncode == 0, done.stderr
    err = done.stderr.splitlines()
    assert len(err) == 1 and err[0].startswith("warning: image ") and "huge.png has 100 x 100 = 10,000 pixels" in err[0]


def test_oov_rate_is_printed_and_stored(work, capsys):
    w, roots = work
    karpathy_folder(w)
    capsys.readouterr()
    assert main(["generate", "cca", "mine", FEAT, "--reg", "1e-1", "--n-components", "2", "-q", *roots]) == 0
    out = capsys.readouterr().out
    # "a <colour> square zzqx": 1 token in 4 has no vector
    assert "OOV rate (train): 25.0% of caption tokens have no word vector" in out
    model = json.loads(next((w / "results" / "models").glob("cca__mine__*.json")).read_text())
    assert model["oov_rate"] == 0.25
    assert main(["run_benchmark", "cca", "mine", "test", FEAT, "-q", *roots]) == 0
    assert "OOV rate (test): 25.0%" in capsys.readouterr().out
    record = json.loads(next((w / "results" / "runs").glob("cca__mine__*.json")).read_text())
    assert record["oov_rate"] == 0.25
    assert main(["run_benchmark", "cca", "mine", "test", FEAT, "-q", *roots]) == 0  # from the cache: still known
    assert "OOV rate (test): 25.0%" in capsys.readouterr().out


def test_search_shows_a_dash_for_an_image_not_on_disk(work, capsys):
    w, roots = work
    folder = karpathy_folder(w)
    assert main(["generate", "cca", "mine", FEAT, "--reg", "1e-1", "--n-components", "2", "-q", *roots]) == 0
    assert main(["run_benchmark", "cca", "mine", "test", FEAT, "-q", *roots]) == 0
    (folder / "images" / "5.png").unlink()  # features are cached; the file is gone since
    capsys.readouterr()
    page = w / "page.html"
    assert main(["search", "cca", "mine", FEAT, "--text", "a blue square", "--html", str(page), "-q", *roots]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("|") and ".png" in line]
    by_id = {r.split("|")[2].strip(): r.split("|")[3].strip() for r in rows}  # test split: 4.png and 5.png
    assert by_id["5.png"] == "-" and by_id["4.png"].endswith("4.png")
    assert page.read_text().count("<img") == 1  # a thumbnail for 4.png only


@pytest.mark.parametrize("command", ["generate", "run_benchmark", "run_benchmark --no-cache"])
def test_stale_temporaries_are_swept_from_every_output_folder_at_start(command, work):
    """A killed run's ``*.<pid>.tmp`` files go at the start of the next generate / run_benchmark from models/, runs/,
    cv/, cache/ and cache/datasets/, also from folders this command does not write into; a live process's stay;
    with --no-cache the data cache is not touched at all."""
    import os

    w, roots = work
    folders = {
        "models": w / "results" / "models",
        "runs": w / "results" / "runs",
        "cv": w / "results" / "cv",
        "cache": w / "data" / "cache",
        "datasets": w / "data" / "cache" / "datasets",
    }
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "x.json.999999999.tmp").write_text("left by a killed run")  # no such process
    live = folders["runs"] / f"y.json.{os.getpid()}.tmp"
    live.write_text("being written now")
    argv = (
        ["generate", "cca", "shapes", FEAT, "--reg", "1e-2", *SMALL]
        if command == "generate"
        else [*RUN, *command.split()[1:]]
    )
    assert main([*argv, *roots]) == 0
    no_cache = "--no-cache" in command
    left = sorted(k for k, f in folders.items() if (f / "x.json.999999999.tmp").exists())
    assert left == (["cache", "datasets"] if no_cache else []) and live.exists()
