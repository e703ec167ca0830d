"""cca_bench: classical (regularized CCA) and neural baselines for image-text retrieval."""
__version__ = "0.1.0"

from cca_bench.errors import UserError


def evaluate_retrieval(image_emb, text_emb, image_index, distance="cosine", folds=1, ties="expected"):
    """Image annotation and image search metrics; see :func:`cca_bench.metrics.evaluate_retrieval`.

    Raises UserError (a ValueError) for NaN/inf embeddings and for queries whose scores are all equal.
    """
    from cca_bench.metrics import evaluate_retrieval as _evaluate

    return _evaluate(image_emb, text_emb, image_index, distance=distance, folds=folds, ties=ties)


__all__ = ["UserError", "evaluate_retrieval", "__version__"]
