"""Shared helpers of the feature tests."""

from pathlib import Path

import numpy as np
import pytest

from cca_bench.datasets.base import CaptionDataset, Split, open_rgb


@pytest.fixture(scope="module")
def one_torch_thread():
    """Batches of a few images spend their time in thread hand-offs: one thread is far faster on busy cores."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def make_file_split():
    """``make(paths) -> (split, dataset)``: one caption per image file."""

    def make(paths) -> tuple[Split, CaptionDataset]:
        n = len(paths)
        sp = Split(
            dataset="t",
            name="test",
            image_ids=[Path(p).name for p in paths],
            captions=["x"] * n,
            tokens=[["x"]] * n,
            image_index=np.arange(n),
            image_rows=np.arange(n),
            loader=lambda i: open_rgb(paths[i]),
            image_paths=list(paths),
        )
        return sp, CaptionDataset(name="t", root=None, splits={"test": sp})

    return make
