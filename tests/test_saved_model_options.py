"""benchmark.saved_model_options: a saved model's name and JSON give back the options that open it."""

from pathlib import Path

import pytest

from cca_bench.benchmark import Options, model_path, saved_model_options
from cca_bench.config import FeatureSpec
from cca_bench.errors import UserError

CONFIG = {
    "method": "cca",
    "dataset": "shapes",
    "features": "glove50_tinyimage",
    "dataset_options": {"n_train": "300"},
    "feature_options": {"idf": True, "stopwords": False, "text_path": None},
}


@pytest.mark.parametrize("crops, tag", [(1, ""), (10, ""), (1, "maxviol"), (10, "v2.1")])
def test_options_rebuild_the_model_name(crops, tag):
    opts = Options.of(dataset_options={"n_train": "300"}, idf=True, crops=crops, tag=tag)
    name = model_path("cca", "shapes", FeatureSpec.parse("glove50_tinyimage"), opts).name
    base = Options.of(data_root=Path("/d"), results_root=Path("/r"), device="cpu")
    method, dataset, features, out = saved_model_options(name, CONFIG, base)
    assert (method, dataset, features) == ("cca", "shapes", "glove50_tinyimage")
    f = out.features
    assert (f.crops, out.tag, f.idf, f.stopwords, out.dataset_options) == (crops, tag, True, False, {"n_train": "300"})
    assert (out.locations.data_root, out.locations.results_root, f.device) == (Path("/d"), Path("/r"), "cpu")
    assert model_path(method, dataset, FeatureSpec.parse(features), out).name == name


def test_a_name_that_does_not_match_its_json_is_refused():
    with pytest.raises(UserError, match="does not match its own JSON"):
        saved_model_options("cca__openmoji__glove50_tinyimage", CONFIG, Options())
    with pytest.raises(UserError, match="lacks method, dataset or features"):
        saved_model_options("x", {"method": "cca"}, Options())


@pytest.mark.parametrize(
    "fv",
    [
        {"pooling": "gmm", "fv_components": 16, "fv_pca": None},
        {"pooling": "gmm+hglmm", "fv_components": 30, "fv_pca": 8},
    ],
)
def test_fisher_vector_models_reopen_with_their_pooling(fv):
    """The web app reopens a model by its name and JSON: the Fisher-vector pooling and size name the model."""
    opts = Options.of(**fv)
    name = model_path("cca", "shapes", FeatureSpec.parse("glove50_tinyimage"), opts).name
    config = {
        "method": "cca",
        "dataset": "shapes",
        "features": "glove50_tinyimage",
        "dataset_options": {},
        "feature_options": opts.text_options(),
    }
    method, dataset, features, out = saved_model_options(name, config, Options())
    f = out.features
    assert (f.pooling, f.fv_components, f.fv_pca) == (fv["pooling"], fv["fv_components"], fv["fv_pca"])
    assert model_path(method, dataset, FeatureSpec.parse(features), out).name == name
