"""What a feature pipeline (text or image) does besides encoding: fit on train, give and take its fitted state.

:class:`Stateless` is the default for pipelines that learn nothing: ``fit`` is a no-op, the state is empty, and
restoring from a model file changes nothing. Pipelines that learn (IDF, Fisher-vector mixtures) override all
three; see :mod:`cca_bench.features.text_pipeline` for the whole protocol.
"""
from __future__ import annotations


class Stateless:
    """Fit, state and restore of a pipeline that learns nothing from the train split."""

    def fit(self, dataset):
        """Learn from ``dataset``'s train split; returns self (here: nothing to learn)."""
        return self

    def state(self) -> tuple[dict, dict]:
        """(arrays, config entries) the model file stores of the fit (here: none)."""
        return {}, {}

    def restore(self, arrays: dict, config: dict, model: str = "the model"):
        """The fit from a saved model's arrays and config (``model`` names it in errors); returns self."""
        return self
