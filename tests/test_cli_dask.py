"""`generate ... --backend dask` fits through a Dask cluster and saves the same model as the numpy backend."""
import numpy as np

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
        argv = ["generate", "kcca", "shapes", "glove50_tinyimage", "--backend", backend, "--landmarks", "50",
                "--kernel-views", "both", *SMALL, *roots]
        assert main(argv) == 0
        (path,) = (tmp_path / backend / "models").glob("*.safetensors")
        models[backend] = KernelCCA.load(path.with_suffix(""))
    a, b = models["numpy"], models["dask"]
    assert b.backend == "dask" and b.map_x_.n_features_out == a.map_x_.n_features_out == 50
    np.testing.assert_allclose(b.canonical_correlations_, a.canonical_correlations_, atol=1e-5)
