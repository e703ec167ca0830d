"""search.retrieval_examples: per-query top-k and ranks for the qualitative page, on hand-built embeddings."""

import numpy as np

from cca_bench.metrics import ranks
from cca_bench.search import retrieval_examples


def test_identity_embeddings_rank_every_ground_truth_first():
    emb = np.eye(6, dtype=np.float32)
    image_index = np.array([0, 1, 2, 3, 4, 5])
    ex = retrieval_examples(emb, emb, image_index, k=3, n_sample=4, n_worst=2)
    for task in ("image_annotation", "image_search"):
        sample = ex[task]["sample"]
        assert len(sample) == 4 and [e["query"] for e in sample] == sorted(e["query"] for e in sample)
        for e in sample:
            assert e["rank"] == 1 and e["hits"][0] == e["query"] and len(e["hits"]) == 3
            assert e["scores"][0] == max(e["scores"])


def test_hand_built_ranks_and_worst_failures():
    # 3 images, 4 captions: caption 3 describes image 2 but points at image 0; image 2's captions are 2 and 3
    images = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    texts = np.array([[1, 0, 0], [0, 1, 0], [0.3, 0.3, 0.9], [1, 0.1, 0]], np.float32)
    image_index = np.array([0, 1, 2, 2])
    ex = retrieval_examples(images, texts, image_index, k=2, n_sample=10, n_worst=1)
    r_i2t, r_t2i = ranks(images, texts, image_index)
    search = ex["image_search"]["sample"]
    assert [e["query"] for e in search] == [0, 1, 2, 3]
    assert [e["rank"] for e in search] == (r_t2i + 1).tolist()
    assert search[3]["rank"] == 3 and search[3]["hits"] == [0, 1]  # image 2 is last for caption 3
    worst = ex["image_search"]["worst"]
    assert [e["query"] for e in worst] == [3]
    ann = ex["image_annotation"]["sample"]
    assert [e["rank"] for e in ann] == (r_i2t + 1).tolist()
    # image 0: caption 0 (its own) then caption 3 (image 2's, the closest other)
    assert ann[0]["hits"] == [0, 3]


def test_images_without_captions_are_not_annotation_queries():
    emb = np.eye(4, dtype=np.float32)
    ex = retrieval_examples(emb, emb[[0, 2]], np.array([0, 2]), k=2, n_sample=10, seed=3)
    assert [e["query"] for e in ex["image_annotation"]["sample"]] == [0, 2]
    assert all(e["rank"] == 1 for e in ex["image_annotation"]["sample"])


def test_sample_is_seeded():
    rng = np.random.default_rng(0)
    images, texts = rng.normal(size=(50, 8)), rng.normal(size=(50, 8))
    a = retrieval_examples(images, texts, np.arange(50), n_sample=5, seed=1)
    b = retrieval_examples(images, texts, np.arange(50), n_sample=5, seed=1)
    c = retrieval_examples(images, texts, np.arange(50), n_sample=5, seed=2)
    assert a == b and a["image_search"]["sample"] != c["image_search"]["sample"]


def test_folds_rank_and_search_within_each_fold_as_the_metrics_do():
    """COCO 1k style: 4 consecutive folds of 10 images; every hit lies in its query's fold and every rank is
    the one fold_ranks gives (the run's metrics), not the whole split's."""
    from cca_bench.metrics import fold_ranks

    rng = np.random.default_rng(0)
    image_index = np.repeat(np.arange(40), 2)
    images = rng.normal(size=(40, 6))
    texts = images[image_index] + 1.5 * rng.normal(size=(80, 6))
    ex = retrieval_examples(images, texts, image_index, k=5, n_sample=80, n_worst=40, folds=4)
    whole = retrieval_examples(images, texts, image_index, k=5, n_sample=80, n_worst=40)
    per_fold = fold_ranks(images, texts, image_index, "cosine", 4)
    r_i2t = np.concatenate([r[0] for r in per_fold]) + 1
    r_t2i = np.concatenate([r[1] for r in per_fold]) + 1
    ann, srch = ex["image_annotation"]["sample"], ex["image_search"]["sample"]
    assert [e["rank"] for e in ann] == r_i2t.tolist() and [e["rank"] for e in srch] == r_t2i.tolist()
    assert all(image_index[h] // 10 == e["query"] // 10 for e in ann for h in e["hits"])
    assert all(h // 10 == image_index[e["query"]] // 10 for e in srch for h in e["hits"])
    assert ex["image_annotation"]["worst"][0]["rank"] == r_i2t.max()
    # the whole split ranks differently here (so ranking in folds is not a no-op on this data)
    assert [e["rank"] for e in whole["image_search"]["sample"]] != r_t2i.tolist()
