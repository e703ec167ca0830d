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
