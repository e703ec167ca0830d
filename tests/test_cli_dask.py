"""`generate ... --backend dask` fits through a Dask cluster and saves the same model as the numpy backend."""

import numpy as np
import pytest

from cca_bench.__main__ import main
from cca_bench.methods.cca import RegularizedCCA

SMALL = ["-D", "n_train=200", "-D", "n_val=20", "-D", "n_test=40", "-q", "--reg", "1e-2"]


def test_generate_with_dask_backend_matches_numpy(tmp_path):
    import dask.distributed  # noqa: F401

    models = {}
    for backend in ("numpy", "dask"):
        roots = ["--data-root", str(tmp_path / "data"), "--results-root", str(tmp_path / backend)]
        assert main(["generate", "cca", "shapes", "glove50_tinyimage", "--backend", backend, *SMALL, *roots]) == 0
        (path,) = (tmp_path / backend / "models").glob("*.safetensors")
        models[backend] = RegularizedCCA.load(path.with_suffix(""))
    a, b = models["numpy"], models["dask"]
    assert b.backend == "dask"
    np.testing.assert_allclose(b.canonical_correlations_, a.canonical_correlations_, atol=1e-6)


def test_generate_kcca_with_dask_backend_matches_numpy(tmp_path):
    """kcca through --backend dask (its kernel maps applied inside the tasks) saves the numpy backend's model."""
    import dask.distributed  # noqa: F401

    from cca_bench.methods.kcca import KernelCCA

    models = {}
    for backend in ("numpy", "dask"):
        roots = ["--data-root", str(tmp_path / "data"), "--results-root", str(tmp_path / backend)]
        argv = [
            "generate",
            "kcca",
            "shapes",
            "glove50_tinyimage",
            "--backend",
            backend,
            "--landmarks",
            "50",
            "--kernel-views",
            "both",
            *SMALL,
            *roots,
        ]
        assert main(argv) == 0
        (path,) = (tmp_path / backend / "models").glob("*.safetensors")
        models[backend] = KernelCCA.load(path.with_suffix(""))
    a, b = models["numpy"], models["dask"]
    assert b.backend == "dask" and b.map_x_.n_features_out == a.map_x_.n_features_out == 50
    np.testing.assert_allclose(b.canonical_correlations_, a.canonical_correlations_, atol=1e-5)


@pytest.mark.parametrize("method", ["ridge", "procrustes", "pls", "asif"])
def test_every_method_of_sums_takes_backend_dask(tmp_path, method):
    """The command-line contract: `generate METHOD --backend dask` (a LocalCluster here) saves the numpy backend's
    model for every method fitted from sums. Planted bug caught: a method whose CLI_PARAMS lack the backend
    options (the flag is refused as another method's)."""
    from cca_bench.methods import load_all
    from cca_bench.registry import METHODS

    load_all()
    models = {}
    for backend in ("numpy", "dask"):
        roots = ["--data-root", str(tmp_path / "data"), "--results-root", str(tmp_path / backend)]
        extra = ["--top-k", "20"] if method == "asif" else []
        argv = ["generate", method, "shapes", "glove50_tinyimage", "--backend", backend, *SMALL[:-2], *extra, *roots]
        assert main(argv) == 0
        (path,) = (tmp_path / backend / "models").glob("*.safetensors")
        models[backend] = METHODS.get(method).load(path.with_suffix(""))
    a, b = models["numpy"], models["dask"]
    assert b.backend == "dask" and a.backend == "numpy"
    for name in ("x_weights_", "y_weights_", "mean_x_", "anchor_texts_"):
        if getattr(a, name, None) is not None:
            # the leading 10 components: the last of the 50 that 250 pairs give pls / procrustes are near-degenerate,
            # and the float32 moments' rounding (chunked differently on the cluster) turns them
            want = getattr(a, name)[..., :10] if getattr(a, name).ndim == 2 and method != "ridge" else getattr(a, name)
            got = getattr(b, name)[..., : want.shape[-1]]
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max(), err_msg=name)


def test_dcca_says_it_trains_on_one_machine(tmp_path, capsys):
    """dcca refuses --backend in one line that says why. Planted bug caught: no REFUSED_OPTIONS on dcca (the
    generic 'not an option of dcca' line, which does not say it trains on one machine)."""
    with pytest.raises(SystemExit) as e:
        main(["generate", "dcca", "shapes", "glove50_tinyimage", "--backend", "dask", "--results-root", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "trains on one machine" in err, err
    assert not (tmp_path / "models").exists()


def test_a_model_fitted_on_dask_scores_where_run_benchmark_says(tmp_path, monkeypatch):
    """An asif model fitted with --backend dask is scored by run_benchmark on this machine unless run_benchmark
    itself says --backend dask (the fit's scheduler may be gone). Planted bug caught: the loaded model keeping
    the fit's backend (its top-k then asks for a Dask cluster)."""
    from cca_bench import linalg

    roots = ["--data-root", str(tmp_path / "data"), "--results-root", str(tmp_path / "results")]
    assert (
        main(
            [
                "generate",
                "asif",
                "shapes",
                "glove50_tinyimage",
                "--backend",
                "dask",
                "--top-k",
                "20",
                *SMALL[:-2],
                *roots,
            ]
        )
        == 0
    )

    def no_cluster(*a, **k):
        raise AssertionError("a Dask cluster was asked for")

    monkeypatch.setattr(linalg, "dask_client", no_cluster)
    assert (
        main(
            [
                "run_benchmark",
                "asif",
                "shapes",
                "test",
                "glove50_tinyimage",
                "--ci",
                "none",
                "-q",
                "-D",
                "n_train=200",
                "-D",
                "n_val=20",
                "-D",
                "n_test=40",
                *roots,
            ]
        )
        == 0
    )


@pytest.mark.parametrize("command", ["generate", "run_benchmark"])
def test_a_scheduler_without_backend_dask_is_refused(tmp_path, capsys, command):
    """--dask-scheduler without --backend dask is one line, before any feature is encoded. Planted bug caught:
    no check (the address ignored, everything run on this machine without a word)."""
    where = (
        ["cca", "shapes", "glove50_tinyimage"]
        if command == "generate"
        else ["cca", "shapes", "test", "glove50_tinyimage"]
    )
    argv = [command, *where, "--dask-scheduler", "tcp://127.0.0.1:8786", "--data-root", str(tmp_path / "data")]
    assert main([*argv, "--results-root", str(tmp_path / "res")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --dask-scheduler goes with --backend dask (this is --backend numpy: all runs here)", err
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("method", ["cca", "kcca", "ridge", "procrustes", "pls"])
def test_chunk_rows_reaches_the_moments_pass(tmp_path, monkeypatch, method):
    """docs/cluster.md sizes a worker's memory by --chunk-rows (one task per chunk): every method fitted from
    moments takes it, and the pass runs in chunks of that many rows. Planted bug caught: no such option (the
    documented flag refused as unrecognised)."""
    from cca_bench import linalg

    seen, real = [], linalg.streamed_moments
    monkeypatch.setattr(linalg, "streamed_moments", lambda *a, **k: seen.append(k["chunk"]) or real(*a, **k))
    roots = ["--data-root", str(tmp_path / "data"), "--results-root", str(tmp_path / "res")]
    extra = ["--landmarks", "50"] if method == "kcca" else []
    argv = ["generate", method, "shapes", "glove50_tinyimage", "--chunk-rows", "64", *extra, *SMALL[:-2], *roots]
    assert main(argv) == 0
    assert seen and set(seen) == {64}


def test_every_option_named_in_the_cluster_docs_exists():
    """Each `--option` that docs/cluster.md names in its prose is an option of `generate` (cca, ridge, asif) or
    `run_benchmark`: a user following the page never meets 'unrecognized arguments'."""
    import re
    from pathlib import Path

    from cca_bench.cli import command_parser

    known = set()
    for argv in (["generate", "cca"], ["generate", "ridge"], ["generate", "asif"], ["run_benchmark"]):
        known.update(s for a in command_parser(argv[0], argv[1:])._actions for s in a.option_strings)
    text = (Path(__file__).resolve().parents[1] / "docs" / "cluster.md").read_text()
    prose = re.sub(r"(?ms)^```.*?^```", "", text)
    named = {f for span in re.findall(r"`([^`]+)`", prose) for f in re.findall(r"(?<!\S)--[a-z][a-z-]*", span)}
    assert named and named <= known, named - known


def test_run_benchmark_help_says_what_backend_dask_runs(capsys):
    """run_benchmark --backend dask also scores asif's top-k on the cluster (the test above): its help says so.
    Planted bug caught: the help naming extraction only."""
    with pytest.raises(SystemExit):
        main(["run_benchmark", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "extract missing image feature shards, and score asif's top-k, as tasks on a Dask cluster" in text
