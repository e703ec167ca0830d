"""The CLI package of issue 26 item 4: per-method options, stray options refused, both spellings of a command,
a did-you-mean for command typos, one vocabulary of metric names, help texts without doubled '%', and
registries that fill themselves without the CLI."""

import subprocess
import sys
from pathlib import Path

import pytest

from cca_bench.cli import COMMANDS, command_name, command_parser, main, parse
from cca_bench.errors import UserError
from cca_bench.registry import METHODS
from cca_bench.stats import metric_name

REPO = Path(__file__).resolve().parents[1]


def run(argv, capsys) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of the CLI; argparse's exits included."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_another_methods_option_is_refused_in_one_line(tmp_path, capsys):
    """`generate cca ... --epochs 3` exits 2 with one line naming cca and the methods that take --epochs.
    Planted bug caught: every method's options offered to every method (the old flattened parser: exit 0)."""
    code, _, err = run(
        [
            "generate",
            "cca",
            "openmoji",
            "glove50_tinyimage",
            "--epochs",
            "3",
            "--data-root",
            str(tmp_path),
            "--results-root",
            str(tmp_path),
        ],
        capsys,
    )
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "--epochs is not an option of cca" in err and "vse" in err and "dcca" in err
    assert "see cca_bench generate cca --help" in err
    assert not any(tmp_path.iterdir())  # refused before anything ran


@pytest.mark.parametrize("flag", ["--margin", "--top-k", "--cv-gamma", "--kernel"])
def test_cca_refuses_each_foreign_option(flag, capsys):
    """VSE's, ASIF's and kcca's options (a CV grid flag included) are refused for cca. Planted bug caught: the
    CV group offering every method's grid flags (--cv-gamma for cca)."""
    with pytest.raises(SystemExit) as e:
        parse(["generate", "cca", "openmoji", "glove50_tinyimage", flag, "1"])
    assert e.value.code == 2 and f"{flag} is not an option of cca" in capsys.readouterr().err


def help_of(argv, capsys) -> str:
    code, out, _ = run([*argv, "--help"], capsys)
    assert code == 0
    return out


def test_generate_method_help_shows_that_methods_options_only(capsys):
    """`generate cca --help` has cca's options and none of VSE's, ASIF's or dcca's; `generate vse --help` has
    VSE's and not cca's. Planted bug caught: the flattened parser (all 8 methods' options in every help)."""
    cca = help_of(["generate", "cca"], capsys)
    assert "--reg" in cca and "--eig-power" in cca and "cca options" in cca
    for foreign in ("--margin", "--epochs", "--max-violation", "--top-k", "--hidden", "--cv-gamma", "vse options"):
        assert foreign not in cca
    vse = help_of(["generate", "vse"], capsys)
    assert "--margin" in vse and "--epochs" in vse and "--max-violation" in vse
    assert "--reg " not in vse and "--eig-power" not in vse and "--cv-components" not in vse


def test_generate_help_lists_every_registered_method(capsys):
    """Planted bug caught: a typed list ("cca, kcca or vse") instead of the registry's names."""
    text = " ".join(help_of(["generate"], capsys).split())
    start = text.index("positional arguments: METHOD")
    method_help = text[start : text.index(" dataset ", start)]
    assert all(name in method_help.replace(",", " ").split() for name in METHODS.names())
    assert len(METHODS.names()) >= 8


def test_method_options_come_from_the_method_declaration():
    """Each method's parser offers exactly its CLI_PARAMS (+ its CV flags). Planted bug caught: a param skipped
    because another method declared it first (the old parser's `seen` set)."""
    for name in METHODS.names():
        options = command_parser("generate", [name, "d", "f"]).options
        for param in METHODS.get(name).CLI_PARAMS:
            assert "--" + param.replace("_", "-") in options, (name, param)


def test_a_mistyped_command_gets_a_did_you_mean(capsys):
    """Planted bug caught: the unknown-command error without difflib's hint."""
    code, _, err = run(["generat", "cca", "openmoji", "glove50_tinyimage"], capsys)
    assert code == 2 and err.strip() == (
        "error: unknown command 'generat'; did you mean 'generate'? (known: "
        + ", ".join(COMMANDS)
        + "; see cca_bench --help)"
    )
    code, _, err = run(["run_benchmrk"], capsys)
    assert code == 2 and "did you mean 'run_benchmark'?" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("name", list(COMMANDS))
def test_both_spellings_of_every_command(name):
    """`run-benchmark` = `run_benchmark`, `export_split` = `export-split`, ... Planted bug caught: names
    matched as typed (the other spelling refused)."""
    assert command_name(name.replace("-", "_")) == name == command_name(name.replace("_", "-"))


def test_both_spellings_parse_to_the_canonical_command():
    """The parsed command is the COMMANDS key whatever the spelling. Planted bug caught: names matched as typed."""
    assert parse(["run-benchmark", "cca", "shapes", "test", "glove50_tinyimage"]).command == "run_benchmark"
    assert parse(["export_split", "shapes", "test", "out"]).command == "export-split"


@pytest.mark.parametrize(
    "given, canonical",
    [
        ("R@1", "R@1"),
        ("r@1", "R@1"),
        ("R1", "R@1"),
        ("recall@10", "R@10"),
        ("i2t:R@1", "i2t:R@1"),
        ("I2T:r@5", "i2t:R@5"),
        ("image_search:medr", "t2i:median_rank"),
        ("medr", "median_rank"),
        ("MedR", "median_rank"),
        ("median_rank", "median_rank"),
        ("Median-Rank", "median_rank"),
        ("meanr", "mean_rank"),
        ("rsum", "rsum"),
        ("RSum", "rsum"),
        ("r_sum", "rsum"),
    ],
)
def test_metric_names_have_one_vocabulary(given, canonical):
    """Planted bug caught: case kept in the lookup (MedR, R1 and RSum refused)."""
    assert metric_name(given) == canonical


@pytest.mark.parametrize("bad", ["R@2", "i2t:rsum", "x2y:R@1", "median"])
def test_an_unknown_metric_is_refused(bad):
    """Planted bugs caught: any R@K accepted (R@2, no such column), a direction before rsum accepted."""
    with pytest.raises(UserError, match="unknown metric"):
        metric_name(bad)


def test_every_command_reads_metrics_through_the_one_vocabulary(capsys):
    """significance --metric and generate --cv-select take the same spellings. Planted bug caught: --cv-select
    with argparse choices ["rsum", "medr"] (MedR and median_rank refused)."""
    args = parse(["significance", "a", "b", "--metric", "T2I:r@1"])
    assert args.metric == "t2i:R@1"
    for spelling in ("medr", "MedR", "median_rank"):
        assert parse(["generate", "cca", "d", "f", "--cv", "--cv-select", spelling]).cv_select == "medr"
    assert parse(["generate", "cca", "d", "f", "--cv", "--cv-select", "R-Sum"]).cv_select == "rsum"
    code, _, err = run(["significance", "a", "b", "--metric", "r@2"], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "unknown metric 'r@2'" in err


@pytest.mark.parametrize("name", list(COMMANDS))
def test_no_help_prints_a_doubled_percent(name, capsys):
    """Planted bug caught: significance's description with "95%%" (argparse prints descriptions as written)."""
    for argv in [[name, m] for m in METHODS.names()] if name == "generate" else [[name]]:
        assert "%%" not in help_of(argv, capsys)
    assert "%%" not in help_of([], capsys)


def test_registries_fill_themselves_without_the_cli(tmp_path):
    """In a fresh interpreter that never imports the CLI, benchmark.generate('cca', ...) fits and saves a model.
    Planted bug caught: METHODS / DATASETS without their filled_by package ("unknown method 'cca' (known:
    none)")."""
    script = (
        "import sys\nfrom pathlib import Path\nfrom cca_bench.benchmark import Options, generate\n"
        "root = Path(sys.argv[1])\n"
        "out = generate('cca', 'shapes', 'glove50_tinyimage', {'n_components': 4}, Options.of(data_root=root, "
        "results_root=root, dataset_options={'n_train': 60, 'n_val': 10, 'n_test': 20}, progress=False))\n"
        "assert 'cca_bench.cli' not in sys.modules and 'cca_bench.__main__' not in sys.modules\n"
        "print(out['n_images'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": ""},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "60"
    assert list((tmp_path / "models").glob("cca__shapes*.safetensors"))
