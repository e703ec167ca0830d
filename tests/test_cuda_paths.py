"""The CUDA paths against the CPU: the CCA fit with its covariance products and solve in torch on the GPU, and
the evaluation's similarity GEMM there. Skipped where torch sees no CUDA device (CI has none); a session lent a
GPU runs them with ``benchmarks/gpu_check.sh``. ``CCA_BENCH_TEST_DEVICE=cpu`` runs the same checks on the CPU
(the evaluation through torch there, the fit through numpy): how the test code was checked without a GPU."""

import os

import numpy as np
import pytest
import torch

from cca_bench.methods.cca import RegularizedCCA
from cca_bench.metrics import ranks, summarize

DEVICE = os.environ.get("CCA_BENCH_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(
    DEVICE.startswith("cuda") and not torch.cuda.is_available(),
    reason="hardware: needs a CUDA device (or CCA_BENCH_TEST_DEVICE=cpu)",
)


def paired(n: int = 4000, dx: int = 96, dy: int = 48, latent: int = 12, seed: int = 0):
    """Two views sharing a ``latent``-d signal (distinct strengths) plus unit noise, float32."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, latent)) * np.linspace(3, 0.3, latent)
    x = z @ rng.standard_normal((latent, dx)) + rng.standard_normal((n, dx))
    y = z @ rng.standard_normal((latent, dy)) + rng.standard_normal((n, dy))
    return x.astype(np.float32), y.astype(np.float32)


@pytest.mark.parametrize("reg", [1e-3, 1e-5])  # float32 products, and float64 ones (small ridge)
def test_cca_fit_on_the_device_matches_the_cpu(reg):
    x, y = paired()
    cpu = RegularizedCCA(n_components=10, reg=reg, device="cpu").fit(x, y)
    dev = RegularizedCCA(n_components=10, reg=reg, device=DEVICE).fit(x, y)
    assert np.abs(cpu.canonical_correlations_ - dev.canonical_correlations_).max() <= 1e-4
    a, b = cpu.transform_x(x[:200]), dev.transform_x(x[:200])
    signs = np.sign((a * b).sum(axis=0))  # each canonical direction is defined up to its sign
    assert np.abs(a - b * signs).max() <= 1e-3 * np.abs(a).max()


def test_evaluation_on_the_device_gives_the_cpu_ranks():
    rng = np.random.default_rng(1)
    ims = rng.standard_normal((600, 32)).astype(np.float32)
    image_index = np.repeat(np.arange(600), 5)
    txt = (ims[image_index] + 1.5 * rng.standard_normal((3000, 32))).astype(np.float32)
    for cpu, dev in zip(ranks(ims, txt, image_index), ranks(ims, txt, image_index, device=DEVICE)):
        assert np.mean(cpu == dev) >= 0.999  # a near-tie may round the other way in another GEMM
        for key, value in summarize(cpu).items():
            assert abs(summarize(dev)[key] - value) <= 0.5, key
