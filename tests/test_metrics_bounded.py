"""A gallery too large for one score block evaluates in smaller blocks with the same counts."""

import numpy as np

from cca_bench import metrics


def test_score_blocks_shrink_to_the_memory_budget(monkeypatch):
    """With a budget of 3 images' scores, every block holds at most 3 images and the tie counts equal those of one
    big block. Planted bug caught: the block left at its default whatever the gallery (blocks of 2048)."""
    rng = np.random.default_rng(0)
    ims = rng.standard_normal((40, 6)).astype(np.float32)
    index = np.repeat(np.arange(40), 3)
    txt = (ims[index] + rng.standard_normal((120, 6))).astype(np.float32)
    txt[5] = txt[4]  # an exact tie, counted the same in every blocking
    want = metrics.tie_counts(ims, txt, index)
    seen = []
    real = metrics._block_bounds
    monkeypatch.setattr(metrics, "_block_bounds", lambda first, block: seen.append(block) or real(first, block))
    monkeypatch.setattr(metrics, "SCORE_BLOCK_BYTES", 3 * 4 * len(txt))
    got = metrics.tie_counts(ims, txt, index)
    assert seen == [3]
    for a, b in zip(got[:2], want[:2]):
        for field in ("above", "tied", "gt_tied"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
