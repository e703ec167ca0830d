"""The one-GEMM ranking (each image block's scores serve both directions) against direct per-query counts,
with many exact ties, and its torch GEMM path run on the CPU."""

import numpy as np
import pytest

from cca_bench.metrics import ranks, similarity


def direct_counts(ims, texts, image_index, distance):
    """Per query, over the whole similarity matrix: (above, tied, tied ground truths) of image annotation and
    of image search, each a list: items other than the positives above the ground truth, tied with it, and the
    positives tied with the best one."""
    s = similarity(ims, texts, distance)
    t2i = [
        (
            int((np.delete(s[:, j], image_index[j]) > s[image_index[j], j]).sum()),
            int((np.delete(s[:, j], image_index[j]) == s[image_index[j], j]).sum()),
            1,
        )
        for j in range(len(texts))
    ]
    i2t = []
    for i in np.unique(image_index):
        pos = image_index == i
        best = s[i, pos].max()
        i2t.append((int((s[i, ~pos] > best).sum()), int((s[i, ~pos] == best).sum()), int((s[i, pos] == best).sum())))
    return [list(map(list, zip(*side))) for side in (i2t, t2i)]


def direct_ranks(ims, texts, image_index, distance, ties):
    """Per query, the rule's 0-based rank from :func:`direct_counts`: s, s + t, or s + t / (m + 1)."""
    rule = {
        "optimistic": lambda s, t, m: s,
        "pessimistic": lambda s, t, m: s + t,
        "expected": lambda s, t, m: s + t / (m + 1),
    }[ties]
    return tuple([rule(*q) for q in zip(*side)] for side in direct_counts(ims, texts, image_index, distance))


@pytest.mark.parametrize("ties", ["optimistic", "pessimistic", "expected"])
@pytest.mark.parametrize("distance", ["dot", "euclidean"])
def test_one_gemm_ranks_match_direct_counts_with_ties(ties, distance):
    rng = np.random.default_rng(0)
    ims = rng.integers(-1, 2, size=(23, 4)).astype(np.float32)  # small integers: exact, often tied scores
    image_index = rng.integers(0, 23, size=70)
    texts = rng.integers(-1, 2, size=(70, 4)).astype(np.float32)
    texts[~texts.any(1), 0] = 1  # an all-zero caption scores every image equally: degenerate (test_metrics_ties)
    want_i2t, want_t2i = direct_ranks(ims, texts, image_index, distance, ties)
    for block in (5, 4096):
        r_i2t, r_t2i = ranks(ims, texts, image_index, distance, ties, block=block)
        assert r_i2t.tolist() == want_i2t and r_t2i.tolist() == want_t2i


@pytest.mark.parametrize("distance", ["cosine", "dot", "euclidean"])
def test_torch_gemm_path_gives_the_numpy_ranks(distance):
    """The device path (the similarity GEMM in torch; CUDA on a GPU) forced onto the CPU."""
    import torch  # noqa: F401

    rng = np.random.default_rng(1)
    ims = rng.standard_normal((40, 8)).astype(np.float32)
    image_index = np.repeat(np.arange(40), 3)
    texts = ims[image_index] + rng.standard_normal((120, 8)).astype(np.float32)
    a = ranks(ims, texts, image_index, distance, block=16)
    b = ranks(ims, texts, image_index, distance, block=16, device="cpu")
    assert all((x == y).all() for x, y in zip(a, b))
