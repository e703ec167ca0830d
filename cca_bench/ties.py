"""Tie rules: per-query tie counts -> 0-based ranks and hit probabilities (PROTOCOLS.md, "Ties must never help").

A query's ground truth ties with other items when they score exactly equal to it. The evaluation counts, per
query, ``above`` (s): gallery items scoring strictly above the ground truth, ``tied`` (t): OTHER items scoring
equal to it, and ``gt_tied`` (m >= 1): ground-truth items in that tie group (always 1 for image search; for
image annotation, the image's captions that share its best caption score). Three rules turn the counts into a
rank:

- ``expected`` (the default): the tie group is put in a uniformly random order and every metric is its
  expectation, computed exactly (no sampling). The rank is s + X, X = the number of other items placed before
  the FIRST ground truth of the group (image annotation takes the best of its captions). For m ground truths
  among m + t tied items, P(X >= x) = C(m + t - x, m) / C(m + t, m) (all m ground truths fall among the last
  m + t - x places), so

      P(rank0 < K) = P(X < K - s) = 1 - prod_{i=0}^{m-1} (m + t - x - i) / (m + t - i),  x = K - s,

  0 for x <= 0 and 1 for x > t; for m = 1 this is clip((K - s) / (t + 1), 0, 1). The expected 0-based rank is
  s + E[X] = s + t / (m + 1) (hockey stick: sum_{x=1}^{t} C(m + t - x, m) = C(m + t, m + 1), and
  C(m + t, m + 1) / C(m + t, m) = t / (m + 1)); s + t / 2 for one ground truth.
- ``optimistic``: every tie counts for the query (rank s): what the reference scripts give when their sort
  happens to put the ground truth first. Random 1-d embeddings score near R@1 = 100% under cosine with it.
- ``pessimistic``: every tie counts against it (rank s + t).

VSE++ and Kiros break ties by ``numpy.argsort`` order, i.e. by item position: arbitrarily. The expected rule is
that order drawn at random, averaged exactly. On untied scores all three rules give the same integer ranks.
Sums behind the metrics are correctly rounded (``math.fsum`` over the fractional terms), so the same counts give
the same metrics bit for bit on any machine and in any order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cca_bench.errors import UserError

RULES = ("expected", "optimistic", "pessimistic")
DEFAULT = "expected"


def check_rule(rule: str) -> str:
    """``rule`` itself, or a UserError naming the choices."""
    if rule not in RULES:
        raise UserError(f"unknown tie rule {rule!r} (choose from {', '.join(RULES)})")
    return rule


@dataclass(frozen=True)
class TieCounts:
    """Per-query counts, int64 arrays of one shape: ``above`` (-1 marks a non-query, e.g. an image without
    captions), ``tied`` (other items tied with the ground truth), ``gt_tied`` (ground truths in that tie group,
    >= 1 for queries). Indexing (``counts[s, images]``) indexes all three."""

    above: np.ndarray
    tied: np.ndarray
    gt_tied: np.ndarray

    @classmethod
    def untied(cls, ranks) -> TieCounts:
        """Integer 0-based ranks with no ties recorded (a reference's ranks, or a ranks file kept before ties)."""
        above = np.asarray(ranks).astype(np.int64)
        if not np.array_equal(above, ranks):
            raise ValueError("fractional ranks carry no tie counts: pass the TieCounts they came from")
        return cls(above, np.zeros_like(above), np.ones_like(above))

    @classmethod
    def of(cls, ranks) -> TieCounts:
        """``ranks`` if it is a TieCounts, else :meth:`untied` of it."""
        return ranks if isinstance(ranks, TieCounts) else cls.untied(ranks)

    def __getitem__(self, idx) -> TieCounts:
        return TieCounts(self.above[idx], self.tied[idx], self.gt_tied[idx])

    def __len__(self) -> int:
        return len(self.above)

    @property
    def shape(self) -> tuple:
        return self.above.shape

    def queries(self) -> np.ndarray:
        """Boolean mask of the real queries (``above >= 0``)."""
        return self.above >= 0

    def rank(self, rule: str) -> np.ndarray:
        """0-based ranks under ``rule`` (float64; -1 stays -1 for non-queries): s, s + t, or s + t / (m + 1)."""
        above = self.above.astype(np.float64)
        if rule == "optimistic":
            return above
        if rule == "pessimistic":
            return above + self.tied
        check_rule(rule)
        return above + self.tied / (np.maximum(self.gt_tied, 1) + 1.0)

    def hit(self, k: int, rule: str) -> np.ndarray:
        """(shape) float64 probability that the query's 0-based rank is below ``k`` (its ground truth is in the
        top k) under ``rule``; 0 for non-queries. Exact: the module docstring's formula."""
        query = self.queries()
        if rule != "expected":
            return (query & (self.rank(rule) < k)).astype(np.float64)
        x = (k - self.above).astype(np.float64)  # places left in the top k when the tie group starts
        t, m = self.tied.astype(np.float64), np.maximum(self.gt_tied, 1)
        p = np.clip(x / (t + 1), 0.0, 1.0)  # m = 1
        several = np.flatnonzero(query & (m > 1) & (x > 0) & (x <= t))
        if several.size:
            xs, ts, ms = x[several], t[several], m[several]
            miss = np.ones(len(several))
            for i in range(int(ms.max())):  # P(X >= x) = prod_{i<m} (m + t - x - i) / (m + t - i)
                on = i < ms
                miss[on] *= (ms[on] + ts[on] - xs[on] - i) / (ms[on] + ts[on] - i)
            p[several] = 1.0 - miss
        return np.where(query, p, 0.0)


def exact_sum(values: np.ndarray, whole: int = 0) -> float:
    """Correctly rounded sum of float64 ``values`` plus the integer ``whole``: integer-valued terms are summed
    exactly in float64 (below 2^53), the others by ``math.fsum``; the result depends on neither the order of
    the terms nor the BLAS, so any split of the same terms gives the same float."""
    values = np.asarray(values, dtype=np.float64).ravel()
    is_whole = values == np.floor(values)
    return math.fsum([float(values[is_whole].sum()) + whole, *values[~is_whole].tolist()])


def exact_mean(values: np.ndarray) -> float:
    """Mean of float64 ``values`` from their correctly rounded sum (:func:`exact_sum`)."""
    return exact_sum(values) / np.size(values)
