"""What text and image pipelines share: fit on train, give and take the fitted state, model-file options.

:class:`Stateless` is the default for pipelines that learn nothing: ``fit`` is a no-op, the state is empty, and
restoring from a model file changes nothing. Pipelines that learn (IDF, Fisher-vector mixtures) override all
three; see :mod:`cca_bench.features.text_pipeline` for the whole protocol.
"""

from __future__ import annotations

import inspect

from cca_bench.errors import UserError


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


def model_file_options(encoder, name: str, opts, flags: dict) -> dict:
    """The model-file options of ``flags`` (fields of the FeatureOptions ``opts``) that encoder ``name`` reads
    (by its signature); one given to an encoder that does not read it is a UserError (it would be silently
    ignored)."""
    accepted = inspect.signature(encoder).parameters
    stray = [k for k in flags if getattr(opts, k) is not None and k not in accepted]
    if stray:
        raise UserError(f"{flags[stray[0]]} is not read by the encoder {name!r} (only by the onnx encoder)")
    return {k: getattr(opts, k) for k in flags if k in accepted}
