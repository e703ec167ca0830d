"""A small fitted model and two runs on `shapes` (glove50 + tiny images), shared by the web app's tests."""

import pytest

from cca_bench.__main__ import main

SMALL = ["-D", "n_train=300", "-D", "n_val=40", "-D", "n_test=60", "-q"]


@pytest.fixture(scope="session")
def web_roots(tmp_path_factory):
    """(data_root, results_root) holding one CCA model and its cosine and dot runs on the test split, and a
    variant of it (``--tag ridge``, reg 0.1) with its cosine run; a ``secret.json`` sits beside the roots, where
    no URL may reach it."""
    tmp = tmp_path_factory.mktemp("web")
    roots = ["--data-root", str(tmp / "data"), "--results-root", str(tmp / "results")]
    assert main(["generate", "cca", "shapes", "glove50_tinyimage", *SMALL, *roots]) == 0
    for distance in ("cosine", "dot"):
        assert (
            main(
                ["run_benchmark", "cca", "shapes", "test", "glove50_tinyimage", "--distance", distance, *SMALL, *roots]
            )
            == 0
        )
    variant = ["--tag", "ridge", *SMALL, *roots]
    assert main(["generate", "cca", "shapes", "glove50_tinyimage", "--reg", "0.1", *variant]) == 0
    assert main(["run_benchmark", "cca", "shapes", "test", "glove50_tinyimage", *variant]) == 0
    (tmp / "secret.json").write_text('{"secret": "TOPSECRET"}')
    for run in (tmp / "results" / "runs").glob("*.json"):  # these tests name runs by their configuration, as
        run.rename(run.with_name(run.name.rsplit("__", 1)[0] + ".json"))  # runs stored before run ids were
    return tmp / "data", tmp / "results"
