"""No fake results: out-of-range parameters are refused where they are typed and where they are used, and a
model that gives NaN embeddings is refused by run_benchmark without writing a run."""

import math

import numpy as np
import pytest

from cca_bench.__main__ import main
from cca_bench.checks import COUNT, NON_NEGATIVE, Bound
from cca_bench.errors import UserError
from cca_bench.methods.cca import RegularizedCCA

SMALL = ["-D", "n_train=300", "-D", "n_val=40", "-D", "n_test=60", "-q"]


def test_bounds():
    assert NON_NEGATIVE.ok(0) and NON_NEGATIVE.ok(np.float32(2.5)) and COUNT.ok(np.int64(3)) and COUNT.ok(4.0)
    for bad in (math.nan, math.inf, -math.inf, -1e-9, "1", None, True):
        assert not NON_NEGATIVE.ok(bad)
    for bad in (0, -2, 2.5, math.inf):
        assert not COUNT.ok(bad)
    assert not Bound(low=0, strict=True).ok(0)
    with pytest.raises(UserError, match="reg must be a finite number >= 0, got nan"):
        NON_NEGATIVE.check("reg", math.nan)


@pytest.mark.parametrize(
    "param, value",
    [
        ("reg", math.nan),
        ("reg", math.inf),
        ("reg", -1.0),
        ("eig_power", math.inf),
        ("eig_power", math.nan),
        ("eig_power", -1.0),
        ("n_components", 0),
        ("n_components", -3),
        ("n_components", 2.5),
        ("chunk_rows", 0),
    ],
)
def test_estimator_refuses_out_of_range_parameters(param, value):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((50, 6)), rng.standard_normal((50, 4))
    with pytest.raises(UserError, match=f"^{param} must be"):
        RegularizedCCA(**{param: value}).fit(x, y)
    good = RegularizedCCA(n_components=2).fit(x, y)
    m = good.moments(x, y)
    with pytest.raises(UserError, match=f"^{param} must be"):
        RegularizedCCA(**{"n_components": 2, param: value}).fit_moments(m)


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["--eig-power", "inf"], "--eig-power"),
        (["--reg", "nan"], "--reg"),
        (["--reg", "-1"], "--reg"),
        (["--n-components", "-5"], "--n-components"),
        (["--n-components", "0"], "--n-components"),
        (["--cv", "--cv-reg", "0.1,nan"], "--cv-reg"),
        (["--cv", "--cv-eig-power", "inf"], "--cv-eig-power"),
        (["vse", "--lr", "nan"], "--lr"),
        (["vse", "--margin", "inf"], "--margin"),
        (["vse", "--epochs", "0"], "--epochs"),
    ],
)
def test_cli_refuses_out_of_range_parameters_at_parse(argv, flag, tmp_path, capsys):
    """cca's options, or VSE's where argv names vse (generate offers a method its own options only)."""
    method, argv = (argv[0], argv[1:]) if argv[0] == "vse" else ("cca", argv)
    with pytest.raises(SystemExit) as exit_:
        main(["generate", method, "shapes", "glove50_tinyimage", *argv, "--results-root", str(tmp_path)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}:" in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())


def test_run_benchmark_refuses_a_model_with_nan_weights(tmp_path, capsys):
    roots = ["--data-root", str(tmp_path / "data"), "--results-root", str(tmp_path / "results")]
    assert main(["generate", "cca", "shapes", "glove50_tinyimage", "--reg", "1e-2", *SMALL, *roots]) == 0
    [weights] = (tmp_path / "results" / "models").glob("*.safetensors")
    path = weights.with_name(weights.name[: -len(".safetensors")])
    model = RegularizedCCA.load(path)
    model.x_weights_[3, :] = np.nan  # a damaged model file: what its own writer would store
    model.save(path, extra={k: v for k, v in model.config_.items() if k not in ("method", "params")})
    capsys.readouterr()
    assert main(["run_benchmark", "cca", "shapes", "test", "glove50_tinyimage", *SMALL, *roots]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "image embeddings contain NaN" in err
    assert not (tmp_path / "results" / "runs").exists() or not any((tmp_path / "results" / "runs").iterdir())


def test_all_zero_embeddings_are_not_a_perfect_score():
    """What ``--eig-power inf`` gave before it was refused: every embedding zero, every query tied."""
    from cca_bench import evaluate_retrieval

    with pytest.raises(UserError, match="score every item of the gallery equally"):
        evaluate_retrieval(np.zeros((20, 8)), np.zeros((40, 8)), np.repeat(np.arange(20), 2))


def test_search_refuses_a_query_that_scores_every_item_alike():
    from cca_bench.metrics import refuse_flat_queries

    rng = np.random.default_rng(1)
    gallery = rng.standard_normal((30, 5))
    refuse_flat_queries(rng.standard_normal((1, 5)), gallery, "cosine")
    for distance in ("cosine", "dot"):
        with pytest.raises(UserError, match="scores all 30 gallery items equally"):
            refuse_flat_queries(np.zeros((1, 5)), gallery, distance)
    with pytest.raises(UserError, match="equally"):  # a gallery of copies: nothing to rank either
        refuse_flat_queries(rng.standard_normal((1, 5)), np.tile(gallery[:1], (30, 1)), "euclidean")
    with pytest.raises(UserError, match="NaN"):
        refuse_flat_queries(np.full((1, 5), np.nan), gallery, "cosine")
