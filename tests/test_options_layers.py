"""Options owned by their layer: a real generate + run_benchmark never hands ``benchmark.Options`` to a module
below the orchestrator, and each layer's options are validated by that layer."""

import sys
from pathlib import Path

import pytest

from cca_bench.benchmark import Options, generate, run_benchmark
from cca_bench.config import Locations
from cca_bench.errors import UserError
from cca_bench.evaluation import RunOptions
from cca_bench.features.options import FeatureOptions

# the orchestrator and what sits above it may hold the composition (tests/test_architecture.py ORCHESTRATOR)
MAY_HOLD = (
    "cca_bench.benchmark",
    "cca_bench.external",
    "cca_bench.search",
    "cca_bench.web",
    "cca_bench.cli",
    "cca_bench.__main__",
)
SMALL = {"n_train": "60", "n_val": "10", "n_test": "20"}


def receivers_of_options(run) -> set[str]:
    """The package functions (module.qualname) that received a ``benchmark.Options`` as an argument while
    ``run()`` ran (a profile hook reads every call's arguments)."""
    seen = set()

    def hook(frame, event, arg):
        if event != "call" or not frame.f_globals.get("__name__", "").startswith("cca_bench"):
            return
        code = frame.f_code
        names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
        if any(isinstance(frame.f_locals.get(n), Options) for n in names if n != "self"):
            seen.add(f"{frame.f_globals['__name__']}.{code.co_qualname}")

    sys.setprofile(hook)
    try:
        run()
    finally:
        sys.setprofile(None)
    return seen


def test_only_the_orchestrator_receives_the_whole_options(tmp_path):
    """Planted bug caught: ``Pipelines.encode`` given ``opts`` instead of ``opts.log`` (and reading
    ``opts.log`` itself) is reported as ``cca_bench.features.pipelines.Pipelines.encode``."""
    opts = Options.of(
        data_root=tmp_path / "data",
        results_root=tmp_path / "results",
        dataset_options=SMALL,
        progress=False,
        bootstrap=20,
    )

    def both():
        generate("cca", "shapes", "glove50_tinyimage", {"n_components": 4}, opts)
        run_benchmark("cca", "shapes", "test", "glove50_tinyimage", opts)

    receivers = receivers_of_options(both)
    assert "cca_bench.benchmark.generate" in receivers  # the hook sees the orchestrator take it
    assert sorted(r for r in receivers if not r.startswith(MAY_HOLD)) == []


def test_options_of_sends_each_name_to_its_layer():
    """Planted bug caught: ``Options.of`` dropping a layer (e.g. ties left at the default) or accepting a
    misspelt name."""
    opts = Options.of(
        data_root="d",
        cache=False,
        idf=True,
        crops=10,
        device="cpu",
        ties="optimistic",
        bootstrap=None,
        tag="v2",
        dataset_options={"n_train": "60"},
    )
    assert opts.locations == Locations(data_root=Path("d"), cache=False) and opts.locations.cache_dir is None
    assert opts.features == FeatureOptions(idf=True, crops=10, device="cpu")
    assert opts.run == RunOptions(bootstrap=None, ties="optimistic")
    assert (opts.tag, opts.dataset_options) == ("v2", {"n_train": "60"})
    with pytest.raises(TypeError, match="idff"):
        Options.of(idff=True)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: RunOptions(ties="random"), "unknown tie rule 'random'"),
        (lambda: RunOptions(bootstrap=0), "bootstrap"),
        (lambda: FeatureOptions(backend="spark"), "unknown extraction backend 'spark'"),
        (lambda: FeatureOptions().with_(fv_componets=16), "'fv_componets' is not a feature option"),
    ],
)
def test_each_layer_validates_its_own_options(build, message):
    """Planted bug caught: RunOptions without its check_rule call (an unknown tie rule got as far as scoring)."""
    with pytest.raises(UserError, match=message):
        build()


def test_lower_layers_refuse_the_composition(tmp_path):
    """Planted bug caught: the features layer or evaluation taking ``benchmark.Options`` by duck typing again
    (the isinstance guards removed)."""
    import numpy as np

    from cca_bench.config import FeatureSpec
    from cca_bench.evaluation import score
    from cca_bench.features.pipelines import Pipelines

    with pytest.raises(TypeError, match="FeatureOptions, not Options"):
        Pipelines.of(FeatureSpec.parse("glove50_tinyimage"), Options(), tmp_path)
    with pytest.raises(TypeError, match="RunOptions, not Options"):
        score([(np.eye(2), np.eye(2))], np.arange(2), "cosine", 1, Options(), {})


def test_intervals_and_paired_tests_share_one_default_of_resamples():
    """One number, one source (issue 24 item 3): a run's intervals, `significance` and `compare --baseline` draw
    the same default number of resamples. Catches a RunOptions default that drifts from stats.PAIRED_RESAMPLES
    (it was 1,000 beside 10,000 when the two branches met), and a library entry point whose default differs
    from the CLI's (evaluate_retrieval and bootstrap_intervals drew 1,000)."""
    from cca_bench import stats
    from cca_bench.cli import parse
    from cca_bench.cli.common import options
    from cca_bench.evaluation import RunOptions

    assert RunOptions().bootstrap == stats.PAIRED_RESAMPLES
    import inspect

    from cca_bench import api

    for fn in (api.evaluate_retrieval, api.bootstrap_intervals, api.paired_test, stats.paired_test):
        assert inspect.signature(fn).parameters["resamples"].default == stats.PAIRED_RESAMPLES, fn.__name__
    args = parse(["run_benchmark", "cca", "openmoji", "test", "glove50_tinyimage"])
    assert options(args).run.bootstrap == stats.PAIRED_RESAMPLES
