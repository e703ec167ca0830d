"""The feature cache returns cached arrays memory-mapped, so large features are not read whole."""

import numpy as np

from cca_bench.features.store import load_or_compute


def test_cached_features_come_back_memory_mapped(tmp_path):
    arr = np.arange(12, dtype=np.float32).reshape(4, 3)
    first, hit1 = load_or_compute(tmp_path, {"dataset": "d", "split": "train"}, lambda: arr)
    second, hit2 = load_or_compute(tmp_path, {"dataset": "d", "split": "train"}, lambda: 1 / 0)
    assert (hit1, hit2) == (False, True)
    assert isinstance(second, np.memmap) and not second.flags.writeable
    np.testing.assert_array_equal(second, arr)
