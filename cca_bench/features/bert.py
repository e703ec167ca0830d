"""BERT encoder forward in plain torch, named like the published state dicts (no transformers library).

Devlin et al. 2019, "BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding": token +
absolute position + segment embeddings, LayerNorm, then post-LayerNorm transformer layers (multi-head
self-attention, GELU feed-forward). Parameter names follow the Hugging Face ``BertModel`` layout
(``embeddings.word_embeddings``, ``encoder.layer.N.attention.self.query``, ...) that sentence-transformers
folders such as all-MiniLM-L6-v2 ship in ``model.safetensors``, so those load with a strict key check.
The pooler (``pooler.dense``) is not used: sentence encoders pool the token states themselves.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from cca_bench.checks import Bound
from cca_bench.errors import UserError

ACTIVATIONS = {
    "gelu": F.gelu,  # the exact (erf) GELU of the original BERT
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
}
IGNORED_KEYS = ("pooler.", "embeddings.position_ids")  # unused head; a buffer older exports save
# config.json values, checked before anything is built: generous bounds (BERT-large: 1024 wide, 24 layers,
# 16 heads, 4096 inner, 512 positions; multilingual vocabularies ~250k) that keep a hostile file from asking
# for millions of layers; the weights file then decides every size (the network is built on the meta device)
LIMITS = {
    "vocab_size": Bound(integer=True, low=1, high=2**24),
    "hidden_size": Bound(integer=True, low=1, high=2**16),
    "num_hidden_layers": Bound(integer=True, low=1, high=1024),
    "num_attention_heads": Bound(integer=True, low=1, high=1024),
    "intermediate_size": Bound(integer=True, low=1, high=2**20),
    "max_position_embeddings": Bound(integer=True, low=1, high=2**20),
    "type_vocab_size": Bound(integer=True, low=1, high=2**16),
    "layer_norm_eps": Bound(low=0, strict=True, high=1),
    "pad_token_id": Bound(integer=True, low=0),
}


@dataclass(frozen=True)
class BertConfig:
    """The fields of a Hugging Face BERT ``config.json`` that decide the forward pass."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu"
    pad_token_id: int = 0

    @classmethod
    def from_dict(cls, cfg: dict, where: str) -> BertConfig:
        """Read a ``config.json`` dict; anything but an absolute-position BERT is a UserError naming ``where``."""
        model_type = cfg.get("model_type", "bert")
        if model_type != "bert":
            raise UserError(
                f"{where}: model_type {model_type!r} is not supported (BERT-architecture models only, "
                "model_type 'bert'; export others to ONNX and use the onnx text encoder, docs/onnx.md)"
            )
        if cfg.get("position_embedding_type", "absolute") != "absolute":
            raise UserError(
                f"{where}: position_embedding_type {cfg['position_embedding_type']!r} is not supported (absolute only)"
            )
        act = cfg.get("hidden_act", "gelu")
        if not isinstance(act, str) or act not in ACTIVATIONS:
            raise UserError(f"{where}: hidden_act {act!r} is not supported ({', '.join(ACTIVATIONS)})")
        names = {f.name for f in fields(cls)}
        required = [f.name for f in fields(cls) if f.default is MISSING]
        missing = [n for n in required if n not in cfg]
        if missing:
            raise UserError(f"{where}: missing {', '.join(missing)}")
        values = {k: v for k, v in cfg.items() if k in names}
        if values.get("pad_token_id", 0) is None:  # some exports write null: BERT pads with id 0
            values["pad_token_id"] = 0
        for key, bound in LIMITS.items():
            if key in values:
                values[key] = bound.check(f"{where}: {key}", values[key])
                values[key] = int(values[key]) if bound.integer else float(values[key])
        config = cls(**values)
        if config.pad_token_id >= config.vocab_size:
            raise UserError(f"{where}: pad_token_id {config.pad_token_id} is not below vocab_size {config.vocab_size}")
        if config.hidden_size % config.num_attention_heads:
            raise UserError(
                f"{where}: hidden_size {config.hidden_size} is not a multiple of num_attention_heads "
                f"{config.num_attention_heads}"
            )
        return config


class Embeddings(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """(b, L) token ids -> (b, L, d); one segment (token type 0), positions 0..L-1."""
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.word_embeddings(ids) + self.position_embeddings(positions) + self.token_type_embeddings.weight[0]
        return self.LayerNorm(x)


class SelfAttention(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.heads = c.num_attention_heads
        self.query, self.key, self.value = (nn.Linear(c.hidden_size, c.hidden_size) for _ in range(3))

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """(b, L, d), keep (b, 1, 1, L) bool (False = padding) -> (b, L, d) softmax(q k^T / sqrt(d_h)) v."""
        b, n, d = x.shape
        q, k, v = (
            f(x).view(b, n, self.heads, d // self.heads).transpose(1, 2) for f in (self.query, self.key, self.value)
        )
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, scale=1 / math.sqrt(d // self.heads))
        return out.transpose(1, 2).reshape(b, n, d)


class DenseNorm(nn.Module):
    """``LayerNorm(residual + dense(x))``: the output sub-layer after attention and after the feed-forward."""

    def __init__(self, d_in: int, c: BertConfig):
        super().__init__()
        self.dense = nn.Linear(d_in, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(residual + self.dense(x))


class Attention(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.self = SelfAttention(c)
        self.output = DenseNorm(c.hidden_size, c)

    def forward(self, x, keep):
        return self.output(self.self(x, keep), x)


class Intermediate(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.intermediate_size)
        self.act = ACTIVATIONS[c.hidden_act]

    def forward(self, x):
        return self.act(self.dense(x))


class Layer(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.attention = Attention(c)
        self.intermediate = Intermediate(c)
        self.output = DenseNorm(c.intermediate_size, c)

    def forward(self, x, keep):
        x = self.attention(x, keep)
        return self.output(self.intermediate(x), x)


class Encoder(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList(Layer(c) for _ in range(c.num_hidden_layers))


class Bert(nn.Module):
    """``forward(ids (b, L) int64, mask (b, L) 0/1) -> (b, L, d)`` float32 last hidden states."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.encoder = Encoder(config)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        keep = mask.bool()[:, None, None, :]
        x = self.embeddings(ids)
        for layer in self.encoder.layer:
            x = layer(x, keep)
        return x


def load_bert(config: BertConfig, state: dict, path: Path) -> Bert:
    """An eval-mode :class:`Bert` holding ``state`` (read from ``path``; a ``bert.`` prefix is stripped, the
    pooler ignored). Missing, unexpected or misshapen tensors are a UserError naming ``path``.

    The network is built on the meta device (no memory) and checked against the weights first; the weights'
    own tensors then become its parameters (``assign=True``), so a config.json claiming a huge vocabulary or
    width allocates nothing: it fails the check."""
    from cca_bench.features.imagenet import check_keys

    state = {k.removeprefix("bert."): v for k, v in state.items()}
    state = {k: v.float() for k, v in state.items() if not k.startswith(IGNORED_KEYS)}
    with torch.device("meta"):
        model = Bert(config)
    check_keys(model, state, path)
    model.load_state_dict(state, assign=True)
    return model.eval()
