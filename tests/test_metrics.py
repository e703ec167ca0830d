"""Retrieval metrics on hand-built score matrices with hand-computed ranks."""

import numpy as np
import pytest

from cca_bench import evaluate_retrieval
from cca_bench.errors import UserError
from cca_bench.metrics import ranks, similarity, summarize, tie_counts


def one_hot(rows, k):
    out = np.zeros((len(rows), k), dtype=np.float32)
    out[np.arange(len(rows)), rows] = 1
    return out


def test_identity_embeddings_give_perfect_scores():
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((50, 16))
    image_index = np.repeat(np.arange(10), 5)
    ims = emb[:10]
    texts = ims[image_index] + 0.01 * rng.standard_normal((50, 16))
    m = evaluate_retrieval(ims, texts, image_index)
    for task in ("image_annotation", "image_search"):
        assert m[task] == {"R@1": 100.0, "R@5": 100.0, "R@10": 100.0, "median_rank": 1.0, "mean_rank": 1.0}


def test_hand_built_ranks_with_several_captions_per_image():
    # 3 images; captions: img0 has 2, img1 has 1, img2 has 3. Scores are given through the dot product
    # of one-hot images with hand-written caption vectors (column i = score against image i).
    ims = np.eye(3, dtype=np.float32)
    texts = np.array(
        [
            [0.1, 0.9, 0.5],  # cap0 -> img0: images above 0.1: img1, img2 -> rank0 2
            [0.8, 0.2, 0.3],  # cap1 -> img0: rank0 0
            [0.5, 0.4, 0.6],  # cap2 -> img1: above 0.4: img0, img2 -> rank0 2
            [0.2, 0.3, 0.1],  # cap3 -> img2: above 0.1: both -> rank0 2
            [0.0, 0.0, 0.7],  # cap4 -> img2: rank0 0
            [0.9, 0.1, 0.4],  # cap5 -> img2: above 0.4: img0 -> rank0 1
        ],
        dtype=np.float32,
    )
    image_index = np.array([0, 0, 1, 2, 2, 2])
    r_i2t, r_t2i = ranks(ims, texts, image_index, distance="dot")
    assert r_t2i.tolist() == [2, 0, 2, 2, 0, 1]
    # annotation: image 0's scores over captions = column 0 = [.1,.8,.5,.2,0,.9]; best gt = .8 (cap1);
    # non-gt above .8: cap5 (.9) -> rank0 1. image 1: column 1 = [.9,.2,.4,.3,0,.1], gt cap2 = .4;
    # above: cap0 (.9) -> 1. image 2: column 2 = [.5,.3,.6,.1,.7,.4]; best gt .7 (cap4) -> 0.
    assert r_i2t.tolist() == [1, 1, 0]
    m = summarize(np.array([2, 0, 2, 2, 0, 1]))
    assert m["R@1"] == pytest.approx(100 * 2 / 6)
    assert m["median_rank"] == 2.0  # sorted r0 = 0,0,1,2,2,2: median 1.5 -> floor 1 -> 2
    assert m["mean_rank"] == pytest.approx(7 / 6 + 1)


def test_median_rank_uses_floor_of_median_of_zero_based_ranks():
    assert summarize(np.array([0, 1]))["median_rank"] == 1.0  # median 0.5 -> floor 0 -> 1
    assert summarize(np.array([0, 1, 2, 3]))["median_rank"] == 2.0  # median 1.5 -> 2


def test_ties_count_for_the_ground_truth_when_optimistic_against_it_when_pessimistic_half_by_default():
    ims = np.eye(3, dtype=np.float32)
    texts = np.array([[0.5, 0.5, 0]], dtype=np.float32)  # caption 0 -> image 0, tied with image 1
    _, opt = ranks(ims, texts, np.array([0]), distance="dot", ties="optimistic")
    _, pes = ranks(ims, texts, np.array([0]), distance="dot", ties="pessimistic")
    _, exp = ranks(ims, texts, np.array([0]), distance="dot")
    assert opt.tolist() == [0] and pes.tolist() == [1] and exp.tolist() == [0.5]
    # annotation with two tied positives and one tied negative: positives never count against; by default
    # the negative comes before both positives in 1 of 3 orders (expected rank 1 / 3)
    texts = np.array([[0.5, 0, 0], [0.5, 0, 0], [0.5, 1, 0], [0, 0, 1]], dtype=np.float32)
    r_opt, _ = ranks(ims, texts, np.array([0, 0, 1, 2]), distance="dot", ties="optimistic")
    r_pes, _ = ranks(ims, texts, np.array([0, 0, 1, 2]), distance="dot", ties="pessimistic")
    r_exp, _ = ranks(ims, texts, np.array([0, 0, 1, 2]), distance="dot")
    assert r_opt.tolist() == [0, 0, 0] and r_pes.tolist() == [1, 0, 0] and r_exp.tolist() == [1 / 3, 0, 0]


def test_images_without_captions_are_not_annotation_queries():
    ims = np.eye(3, dtype=np.float32)
    texts = one_hot([0, 2], 3)
    r_i2t, r_t2i = ranks(ims, texts, np.array([0, 2]), distance="dot")
    assert len(r_i2t) == 2 and r_t2i.tolist() == [0, 0]


def test_folds_average_per_fold_metrics():
    rng = np.random.default_rng(1)
    ims = rng.standard_normal((20, 8)).astype(np.float32)
    image_index = np.repeat(np.arange(20), 2)
    texts = ims[image_index] + 1.5 * rng.standard_normal((40, 8)).astype(np.float32)
    folded = evaluate_retrieval(ims, texts, image_index, folds=2)
    a = evaluate_retrieval(ims[:10], texts[:20], image_index[:20])
    b = evaluate_retrieval(ims[10:], texts[20:], image_index[20:] - 10)
    for task in folded:
        for k in folded[task]:
            assert folded[task][k] == pytest.approx((a[task][k] + b[task][k]) / 2)
    with pytest.raises(UserError):
        evaluate_retrieval(ims, texts, image_index, folds=3)


def test_blocking_does_not_change_ranks():
    rng = np.random.default_rng(2)
    ims = rng.standard_normal((37, 6))
    image_index = rng.integers(0, 37, size=90)
    texts = rng.standard_normal((90, 6))
    for distance in ("cosine", "dot", "euclidean"):
        full = ranks(ims, texts, image_index, distance, block=4096)
        small = ranks(ims, texts, image_index, distance, block=7)
        assert all((f == s).all() for f, s in zip(full, small))


def test_ranks_match_a_full_argsort_reference():
    """The reference scripts argsort every query; with no ties the counts must agree."""
    rng = np.random.default_rng(3)
    ims = rng.standard_normal((15, 5))
    image_index = np.repeat(np.arange(15), 3)
    texts = rng.standard_normal((45, 5))
    for distance in ("cosine", "dot", "euclidean"):
        s = similarity(ims, texts, distance)
        r_i2t, r_t2i = ranks(ims, texts, image_index, distance)
        for i in range(15):
            order = np.argsort(-s[i])
            assert r_i2t[i] == min(np.flatnonzero(np.isin(order, np.flatnonzero(image_index == i))))
        for j in range(45):
            order = np.argsort(-s[:, j])
            assert r_t2i[j] == np.flatnonzero(order == image_index[j])[0]


def test_euclidean_ranks_by_negative_distance():
    ims = np.array([[0.0, 0.0], [10.0, 0.0]])
    texts = np.array([[9.0, 0.0]])  # nearest to image 1; by dot product image 1 too, so use a case that differs
    texts = np.array([[1.0, 0.0]])  # dot ranks image 1 first (10 > 0); euclidean ranks image 0 first
    _, r_dot = ranks(ims, texts, np.array([0]), "dot")
    _, r_euc = ranks(ims, texts, np.array([0]), "euclidean")
    assert r_dot.tolist() == [1] and r_euc.tolist() == [0]


def test_bad_inputs_are_user_errors():
    with pytest.raises(UserError, match="distance"):
        evaluate_retrieval(np.eye(2), np.eye(2), [0, 1], distance="manhattan")
    with pytest.raises(UserError, match="width"):
        evaluate_retrieval(np.eye(2), np.eye(3), [0, 1, 1])
    with pytest.raises(UserError, match="image_index"):
        evaluate_retrieval(np.eye(2), np.eye(2), [0, 5])


def test_recall_curve_counts_ranks_up_to_k():
    from cca_bench.metrics import recall_curve

    curve = recall_curve(np.array([0, 0, 1, 4, 60]), k_max=5)
    assert curve == pytest.approx([40.0, 60.0, 60.0, 60.0, 80.0])
    m = summarize(np.array([0, 0, 1, 4, 60]))
    assert (curve[0], curve[4]) == (m["R@1"], m["R@5"])


def test_curves_come_from_the_same_ranks_as_the_metrics():
    from cca_bench.metrics import evaluate_with_curves

    rng = np.random.default_rng(3)
    ims = rng.standard_normal((40, 8))
    image_index = np.repeat(np.arange(40), 5)
    texts = ims[image_index] + rng.standard_normal((200, 8))
    metrics, curves = evaluate_with_curves(ims, texts, image_index, folds=2)
    assert metrics == evaluate_retrieval(ims, texts, image_index, folds=2)
    for task in ("image_annotation", "image_search"):
        assert len(curves[task]) == 50 and curves[task][-1] == 100.0
        for k in (1, 5, 10):
            assert curves[task][k - 1] == pytest.approx(metrics[task][f"R@{k}"])


def test_coco_1k_averages_five_folds_and_5k_uses_all_images():
    from cca_bench.benchmark import protocol_folds

    rng = np.random.default_rng(4)
    ims = rng.standard_normal((5000, 16)).astype(np.float32)
    image_index = np.repeat(np.arange(5000), 5)
    texts = ims[image_index] + 2.0 * rng.standard_normal((25000, 16)).astype(np.float32)
    assert protocol_folds("1k", 5000, "test") == 5 and protocol_folds("5k", 5000, "test") == 1
    assert protocol_folds("1k", 1000, "flickr8k/test") == 1 == protocol_folds("full", 5000, "test")
    one_k = evaluate_retrieval(ims, texts, image_index, folds=protocol_folds("1k", 5000, "test"))
    per_fold = [
        evaluate_retrieval(ims[f * 1000 : (f + 1) * 1000], texts[f * 5000 : (f + 1) * 5000], image_index[:5000])
        for f in range(5)
    ]
    for task in ("image_annotation", "image_search"):
        for metric in one_k[task]:
            assert one_k[task][metric] == pytest.approx(np.mean([f[task][metric] for f in per_fold]))
    five_k = evaluate_retrieval(ims, texts, image_index, folds=protocol_folds("5k", 5000, "test"))
    i2t, t2i, *_ = tie_counts(ims, texts, image_index)
    assert five_k == {"image_annotation": summarize(i2t), "image_search": summarize(t2i)}
    # a 5x larger gallery is harder: the 1k protocol scores higher on the same embeddings
    assert one_k["image_search"]["R@1"] > five_k["image_search"]["R@1"]
