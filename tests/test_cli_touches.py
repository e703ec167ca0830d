"""Small CLI touches of issue 21.7: did-you-mean for misspelled features and options, `list` fast and within
120 columns, `search` without an empty path column, `compare --help` naming the files it writes."""

import subprocess
import sys
from pathlib import Path

import pytest

from cca_bench.__main__ import main

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "argv, line",
    [
        (["generate", "cca", "shapes", "glov50_tinyimage"], "did you mean 'glove50_tinyimage'?"),
        (["generate", "cca", "shapes", "glove50_efficientnte"], "did you mean 'efficientnet_lite0'?"),
        (
            ["generate", "cca", "shapes", "glove50_tinyimage", "--n-componets", "5"],
            "error: cca_bench generate: unrecognized arguments: --n-componets 5; did you mean --n-components? "
            "(see cca_bench generate cca --help)",
        ),
        (
            ["run_benchmark", "cca", "shapes", "test", "glove50_tinyimage", "--distnce=dot"],
            "unrecognized arguments: --distnce=dot; did you mean --distance? (see cca_bench run_benchmark --help)",
        ),
        (
            ["compare", "--zzz"],
            "error: cca_bench compare: unrecognized arguments: --zzz (see cca_bench compare --help)",
        ),
    ],
)
def test_misspellings_get_a_did_you_mean(argv, line, tmp_path, capsys):
    code = None
    try:
        code = main([*argv, "--data-root", str(tmp_path), "--results-root", str(tmp_path)])
    except SystemExit as e:  # argparse exits
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1 and line in err, err


def test_list_fits_120_columns_without_importing_torch(tmp_path):
    script = (
        "import sys; from cca_bench.__main__ import main; main(['list', '--data-root', sys.argv[1]]); "
        "print('torch' in sys.modules, file=sys.stderr)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": ""},
        timeout=120,
    )
    assert out.returncode == 0 and out.stderr.strip() == "False"  # torch costs seconds to import
    lines = out.stdout.splitlines()
    assert max(map(len, lines)) <= 120, max(lines, key=len)  # (a file path longer than that would stay whole)
    for name in ("openmoji", "shapes", "flickr8k", "glove50", "efficientnet_lite0", "vgg_karpathy", "cca", "vse"):
        assert any(line.startswith(f"| {name} ") for line in lines), name
    assert any("dataset_flickr8k.json" in line for line in lines)


def test_search_drops_the_path_column_when_no_image_has_a_file(tmp_path, capsys):
    roots = ["--data-root", str(tmp_path / "data"), "--results-root", str(tmp_path / "results"), "-q"]
    small = ["-D", "n_train=200", "-D", "n_val=20", "-D", "n_test=30"]
    assert main(["generate", "cca", "shapes", "glove50_tinyimage", *small, *roots]) == 0
    capsys.readouterr()
    assert main(["search", "cca", "shapes", "glove50_tinyimage", "--text", "a red circle", *small, *roots]) == 0
    header = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| rank"))
    assert [c.strip() for c in header.strip("|").split("|")] == ["rank", "image id", "caption", "score"]


def test_compare_help_names_the_files_it_writes(capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "RESULTS.md and RESULTS.csv in the results root" in help_text and "./results/RESULTS.md" in help_text
