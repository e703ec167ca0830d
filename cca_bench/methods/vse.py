"""Neural visual-semantic embedding (VSE) ranker: linear image map, GRU or bag-of-words caption encoder,
pairwise ranking hinge loss over in-batch negatives.

After Kiros, Salakhutdinov & Zemel 2014 ("Unifying visual-semantic embeddings with multimodal neural language
models"): an image is a linear map of its L2-normalised CNN feature, a caption is the last hidden state of a
GRU run over its word embeddings, both are L2-normalised and scored by cosine. The loss is the contrastive
pairwise ranking hinge of VSE++ (Faghri et al. BMVC 2018, ``ContrastiveLoss``): for each positive pair,
``[margin - s(i, c) + s(i, c')]_+`` over the negative captions c' and ``[margin - s(i, c) + s(i', c)]_+`` over
the negative images i' of the batch, summed (Kiros) or only the hardest of each (``max_violation``, VSE++).
``loss="order"`` scores ``-||max(0, c - i)||^2`` on non-negative embeddings (order embeddings, Vendrov et al.
ICLR 2016, eq. 2: a caption is more abstract than its image). Note that ``run_benchmark`` (and the validation
R-sum here) rank with the harness's distances (cosine by default), not with the order-violation score.

Batches hold every caption of the train split once per epoch, each with its image's feature (an image
appears once per caption, as in CCA's training pairs). Two captions of the same image may fall in one batch;
the ``same`` mask keeps them from counting as negatives of each other (rather than sampling one caption per
image per batch, which would see each image once per epoch instead of five times).

Words. The vocabulary is ``<pad>``, ``<unk>`` and the words of the train captions that the text encoder's
word-vector table knows (``FeatureSet.word_vectors()``); their embeddings start at those vectors and stay
frozen unless ``trainable_embeddings``. Frozen, the embedding table *is* the word-vector table, so at
embedding time a word unseen in training is looked up there (``open_vocabulary``) rather than mapped to
``<unk>``; fine-tuned embeddings have no such counterpart and unseen words become ``<unk>``.

Early stopping follows VSE++: after each epoch the validation split is ranked (cosine, as ``run_benchmark``
ranks by default) and R-sum = R@1 + R@5 + R@10 of both directions is computed; the weights of the best epoch
are kept, and training stops after ``patience`` epochs without improvement. Without a validation split all
``epochs`` run and the last weights are kept.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from cca_bench.checks import COUNT, NON_NEGATIVE, POSITIVE, Bound
from cca_bench.config import available_cores, torch_device
from cca_bench.errors import UserError
from cca_bench.methods.base import Params, load_saved, save_arrays
from cca_bench.registry import METHODS

BATCH, THREADS = Bound(integer=True, low=2), Bound(integer=True, low=0)  # a batch needs a negative; 0 = torch's

PAD, UNK = "<pad>", "<unk>"
LOSSES = ("contrastive", "order")
ENCODERS = ("gru", "bow")
EMBED_BATCH = 1024


# ----------------------------------------------------------------------------------------------- vocabulary


def build_vocab(token_lists, vectors) -> list[str]:
    """``[<pad>, <unk>]`` + the sorted distinct words of ``token_lists`` that ``vectors`` has a vector for."""
    words = sorted({w for toks in token_lists for w in toks})
    return [PAD, UNK] + [w for w in words if w not in (PAD, UNK) and vectors.get(w) is not None]


def embedding_matrix(vocab: list[str], vectors) -> np.ndarray:
    """(V, d) float32 initial embeddings: the table's rows, zeros for ``<pad>`` and ``<unk>``."""
    out = np.zeros((len(vocab), vectors.dim), dtype=np.float32)
    for i, w in enumerate(vocab[2:], start=2):
        out[i] = vectors.get(w)
    return out


def token_ids(token_lists, index: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Captions -> (n, L) int64 word ids padded with 0 (``<pad>``) and (n,) int64 lengths.

    Unknown words map to 1 (``<unk>``); an empty caption becomes the single token ``<unk>``.
    """
    seqs = [[index.get(w, 1) for w in toks] or [1] for toks in token_lists]
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    ids = np.zeros((len(seqs), int(lengths.max(initial=1))), dtype=np.int64)
    for row, s in zip(ids, seqs):
        row[: len(s)] = s
    return ids, lengths


def l2_rows(a: np.ndarray) -> np.ndarray:
    """(n, d) -> (n, d) float32 rows of unit L2 norm (zero rows stay zero); Kiros et al. normalise CNN features."""
    a = np.asarray(a, dtype=np.float32)
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)


# ----------------------------------------------------------------------------------------------- network


def _gru_head(nn, word_dim: int, dim: int):
    return nn.GRU(word_dim, dim, batch_first=True)


def _bow_head(nn, word_dim: int, dim: int):
    return nn.Linear(word_dim, dim)


def _gru_texts(net, words, lengths):
    """(B, L, d_w) word embeddings, (B,) lengths -> (B, dim) GRU state after each caption's last word
    (padding comes after it, so it never reaches that state)."""
    import torch

    out, _ = net["head"](words)
    return out[torch.arange(len(words), device=words.device), lengths - 1]


def _bow_texts(net, words, lengths):
    """(B, L, d_w) word embeddings (``<pad>`` rows zero), (B,) lengths -> (B, dim) linear map of their mean."""
    return net["head"](words.sum(1) / lengths[:, None].to(words.dtype))


TEXT_HEADS = {"gru": (_gru_head, _gru_texts), "bow": (_bow_head, _bow_texts)}


def build_net(image_dim: int, embeddings: np.ndarray, dim: int, encoder: str):
    """The trainable parts as a ``ModuleDict``: ``img`` Linear(d_i, dim), ``emb`` Embedding(V, d_w) holding
    ``embeddings``, ``head`` the GRU(d_w, dim) or Linear(d_w, dim) of ``encoder``. Linear layers get Xavier
    uniform weights and zero biases (VSE++ ``EncoderImagePrecomp.init_weights``)."""
    import torch
    from torch import nn

    net = nn.ModuleDict(
        {
            "img": nn.Linear(image_dim, dim),
            "emb": nn.Embedding(len(embeddings), embeddings.shape[1], padding_idx=0),
            "head": TEXT_HEADS[encoder][0](nn, embeddings.shape[1], dim),
        }
    )
    with torch.no_grad():
        net["emb"].weight.copy_(torch.from_numpy(embeddings))
        for layer in (net["img"], net["head"]):
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)
                layer.bias.zero_()
    return net


@contextmanager
def torch_threads(n: int | None):
    """Run the block with ``n`` torch intra-op threads (None: unchanged), then restore the previous count."""
    import torch

    before = torch.get_num_threads()
    if n is not None and n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def finish(z, loss: str):
    """(B, dim) -> L2-normalised rows; absolute values too for order embeddings (Vendrov et al. 2016)."""
    import torch.nn.functional as F

    z = F.normalize(z, dim=1)
    return z.abs() if loss == "order" else z


# ----------------------------------------------------------------------------------------------- losses


def cosine_scores(im, txt):
    """(B, k) images, (C, k) captions (unit rows) -> (B, C) ``s[i, j] = im_i . txt_j``."""
    return im @ txt.T


def order_scores(im, txt):
    """(B, k) images, (C, k) captions (non-negative) -> (B, C) ``s[i, j] = -||max(0, txt_j - im_i)||^2``.

    Vendrov et al. 2016, eq. 2: the order-violation penalty E(image, caption) is zero when the caption
    lies above its image coordinate-wise (the caption is the more abstract of the two); the score is -E.
    """
    return -(txt[None, :, :] - im[:, None, :]).clamp(min=0).pow(2).sum(-1)


SCORES = {"contrastive": cosine_scores, "order": order_scores}


def ranking_loss(scores, same, margin: float, max_violation: bool = False):
    """Pairwise ranking hinge over in-batch negatives, summed over the batch (VSE++ ``ContrastiveLoss``).

    Args:
        scores: (B, B) ``scores[i, j]`` = score of image i with caption j; the diagonal holds the B positives.
        same: (B, B) bool, True where pairs i and j show the same image (the diagonal included): such a j is
            not a negative of i in either direction.
        margin: the hinge margin; max_violation: keep only the hardest negative of each positive (VSE++)
            instead of summing over all of them (Kiros et al. 2014).
    Returns:
        a scalar: sum over i of the caption-side costs ``[margin - s_ii + s_ij]_+`` and over j of the
        image-side costs ``[margin - s_jj + s_ij]_+``.
    """
    pos = scores.diagonal()
    cost_caption = (margin + scores - pos[:, None]).clamp(min=0).masked_fill(same, 0)
    cost_image = (margin + scores - pos[None, :]).clamp(min=0).masked_fill(same, 0)
    if max_violation:
        return cost_caption.max(1).values.sum() + cost_image.max(0).values.sum()
    return cost_caption.sum() + cost_image.sum()


def r_sum(metrics: dict) -> float:
    """R@1 + R@5 + R@10 of image annotation and image search (VSE++ model selection), at most 600."""
    from cca_bench.stats import rsum_of

    return float(rsum_of(metrics))


def early_stopping(net, epoch, val_score, epochs: int, patience: int, n_batches: int, name: str, progress: bool):
    """Train ``net`` epoch by epoch, keep the weights of the best validation score (VSE++'s model selection).

    ``epoch(bar) -> mean loss`` runs one epoch (updating the tqdm ``bar`` per batch); ``val_score() -> R-sum``
    or None (no validation split: every epoch runs and the last weights are kept). Stops after ``patience``
    epochs without a better score. Leaves the best weights in ``net`` (in eval mode); returns
    (history: per epoch {"epoch", "loss", "val_rsum"}, best epoch)."""
    from tqdm.auto import tqdm

    history, best, best_state, best_epoch, waited = [], -np.inf, None, 0, 0
    with tqdm(
        total=epochs * n_batches, desc=name, unit="batch", file=sys.stderr, disable=not progress, dynamic_ncols=True
    ) as bar:
        for i in range(1, epochs + 1):
            loss = epoch(bar)
            rsum = val_score()
            history.append({"epoch": i, "loss": loss, "val_rsum": rsum})
            bar.set_postfix(loss=f"{loss:.4f}", val_rsum="-" if rsum is None else f"{rsum:.1f}")
            if rsum is None or rsum > best:
                best, waited, best_epoch = rsum, 0, i
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            else:
                waited += 1
                if waited >= patience:
                    break
    net.load_state_dict(best_state)
    net.eval()
    return history, best_epoch


# ----------------------------------------------------------------------------------------------- estimator


@METHODS.register(
    "vse",
    help="neural VSE ranker (Kiros et al. 2014; VSE++ loss): linear image map, GRU or "
    "bag-of-words over word vectors, hinge ranking loss, early stopping on validation R-sum",
)
class VSE(Params):
    """Visual-semantic embedding trained with a ranking loss, scikit-learn style.

    Args:
        dim: joint embedding width (also the GRU state width). Kiros/VSE++ use 1024; 256 keeps an epoch of
            30,000 pairs under a minute on 2 CPU cores (about 4x less work per step than 512).
        margin: hinge margin (VSE++: 0.2; order embeddings usually take smaller ones, Vendrov: 0.05).
        lr: Adam learning rate. train_batch_size: pairs per batch (VSE++: 128).
        epochs: most epochs; patience: stop after this many epochs without a better validation R-sum.
        max_violation: hardest in-batch negative only (VSE++) instead of the sum over negatives.
        loss: "contrastive" (cosine scores) or "order" (order-violation scores on |embeddings|).
        encoder: "gru" (last GRU state, word order matters) or "bow" (linear map of the mean embedding).
        trainable_embeddings: fine-tune the word embeddings; by default they stay frozen at the word
            vectors (fewer parameters to fit on small training sets, faster, and open vocabulary).
        open_vocabulary: with frozen embeddings, embed a caption word unseen in training with its vector
            from the FeatureSet's ``word_vectors()`` (the frozen table is the word-vector table) instead of
            ``<unk>``; matters when test captions use new words (OpenMoji: 39% of test tokens).
        grad_clip: gradient norm clip (VSE++: 2.0). device: "auto" (CUDA when present), "cpu", "cuda".
        num_threads: torch intra-op threads while training on the CPU (restored afterwards). 0 (default):
            every core this process may use (``os.sched_getaffinity``); n: n threads (1 is the better choice
            on a machine whose cores other processes keep busy: OpenMP threads that spin-wait lose most of
            their time whenever another process holds a core; benchmarks/VSE_REPORT.md).
        random_state: seeds the initial weights and the batch order. progress: tqdm bar on stderr.
    Fitted: ``net_`` (torch ModuleDict), ``vocab_`` (V,) words, ``image_dim_``, ``word_dim_``,
        ``n_samples_``, ``best_epoch_``, ``history_`` (per epoch: loss per pair, validation R-sum).
    """

    uses_val = True
    CLI_PARAMS = {
        "dim": (COUNT.cli(), "vse: joint embedding width, also the GRU width (default 256)"),
        "margin": (NON_NEGATIVE.cli(), "vse: ranking hinge margin (default 0.2)"),
        "lr": (POSITIVE.cli(), "vse: Adam learning rate (default 2e-3)"),
        "train_batch_size": (BATCH.cli(), "vse: image-caption pairs per training batch (default 128)"),
        "epochs": (COUNT.cli(), "vse: most training epochs (default 15)"),
        "patience": (COUNT.cli(), "vse: stop after this many epochs without a better validation R-sum (default 3)"),
        "max_violation": (bool, "vse: hardest in-batch negative only (VSE++) instead of the sum over negatives"),
        "loss": (str, "vse: contrastive (cosine) or order (order embeddings, Vendrov et al. 2016)", LOSSES),
        "encoder": (str, "vse: caption encoder, gru (word order matters) or bow (mean of embeddings)", ENCODERS),
        "trainable_embeddings": (bool, "vse: fine-tune the word embeddings (default: frozen word vectors)"),
        "num_threads": (
            int,
            "vse: torch threads while training on the CPU (default 0: every core this process may use)",
        ),
    }

    def __init__(
        self,
        dim=256,
        margin=0.2,
        lr=2e-3,
        train_batch_size=128,
        epochs=15,
        patience=3,
        max_violation=False,
        loss="contrastive",
        encoder="gru",
        trainable_embeddings=False,
        open_vocabulary=True,
        grad_clip=2.0,
        device="auto",
        num_threads=0,
        random_state=0,
        progress=True,
    ):
        self.dim = dim
        self.margin = margin
        self.lr = lr
        self.train_batch_size = train_batch_size
        self.epochs = epochs
        self.patience = patience
        self.max_violation = max_violation
        self.loss = loss
        self.encoder = encoder
        self.trainable_embeddings = trainable_embeddings
        self.open_vocabulary = open_vocabulary
        self.grad_clip = grad_clip
        self.device = device
        self.num_threads = num_threads
        self.random_state = random_state
        self.progress = progress

    def _validate(self):
        if self.loss not in LOSSES:
            raise UserError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.encoder not in ENCODERS:
            raise UserError(f"encoder must be one of {', '.join(ENCODERS)}, got {self.encoder!r}")
        checks = {
            "dim": COUNT,
            "train_batch_size": BATCH,
            "epochs": COUNT,
            "patience": COUNT,
            "lr": POSITIVE,
            "margin": NON_NEGATIVE,
            "grad_clip": POSITIVE,
            "num_threads": THREADS,
        }
        bad = [k for k, b in checks.items() if not b.ok(getattr(self, k) or (0 if k == "num_threads" else None))]
        if bad:
            raise UserError(
                f"invalid vse parameter {bad[0]}={getattr(self, bad[0])!r} "
                "(finite; dim, epochs, patience >= 1; train_batch_size >= 2; lr, grad_clip > 0; "
                "margin, num_threads >= 0)"
            )

    def params_label(self) -> str:
        """Short label for tables: ``gru d=256 sum m=0.2 frozen ep=7``."""
        neg = "max" if self.max_violation else "sum"
        kind = f"{neg} order" if self.loss == "order" else neg
        emb = "ft" if self.trainable_embeddings else "frozen"
        ep = f" ep={self.best_epoch_}" if hasattr(self, "best_epoch_") else ""
        return f"{self.encoder} d={self.dim} {kind} m={self.margin:g} {emb}{ep}"

    # --- fitting --------------------------------------------------------------------------------
    def fit_features(self, train, val=None):
        """Fit on a FeatureSet (``images``, ``tokens``, ``image_index``, ``word_vectors()``); ``val`` (a
        FeatureSet or None) drives early stopping. Returns self."""
        import torch

        self._validate()
        embeddings, images, ids, lengths, index = self._training_arrays(train)
        dev = torch_device(self.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.random_state)
            self.net_ = build_net(images.shape[1], embeddings, self.dim, self.encoder).to(dev)
        self.net_["emb"].weight.requires_grad_(bool(self.trainable_embeddings))
        data = [torch.from_numpy(a).to(dev) for a in (images, ids, lengths, index)]
        with torch_threads((self.num_threads or available_cores()) if dev == "cpu" else None):
            self._train(data, val)
        return self

    def _training_arrays(self, train):
        """Check the FeatureSet, build the vocabulary -> initial embeddings (V, d_w), unit-norm images
        (n_img, d_i), word ids (n, L), lengths (n,), image_index (n,)."""
        if train.word_vectors is None:
            raise UserError(
                "vse embeds words itself and needs the text encoder's word vectors (FeatureSet.word_vectors)"
            )
        if len(train.tokens) != len(train.image_index) or len(train.tokens) < 2:
            raise UserError(
                f"vse needs the tokens of every caption (at least 2); got {len(train.tokens)} token "
                f"lists for {len(train.image_index)} captions"
            )
        vectors = train.word_vectors()
        self.vocab_ = build_vocab(train.tokens, vectors)
        self.image_dim_, self.word_dim_ = int(train.images.shape[1]), int(vectors.dim)
        self.n_samples_ = len(train.tokens)
        ids, lengths = token_ids(train.tokens, self._index())
        index = np.asarray(train.image_index, dtype=np.int64)
        return embedding_matrix(self.vocab_, vectors), l2_rows(train.images), ids, lengths, index

    def _index(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.vocab_)}

    def _train(self, data, val):
        """Epochs of Adam with early stopping on validation R-sum; leaves the best weights in ``net_``."""
        import torch

        params = [p for p in self.net_.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=self.lr)
        gen = torch.Generator().manual_seed(self.random_state)
        n_batches = -(-len(data[1]) // self.train_batch_size)
        self.history_, self.best_epoch_ = early_stopping(
            self.net_,
            lambda bar: self._epoch(data, opt, params, gen, bar),
            lambda: self._val_rsum(val),
            self.epochs,
            self.patience,
            n_batches,
            "vse",
            self.progress,
        )

    def _epoch(self, data, opt, params, gen, bar) -> float:
        """One pass over all pairs in a random order; returns the mean loss per pair."""
        import torch

        images, ids, lengths, index = data
        self.net_.train()
        total = 0.0
        for b in torch.randperm(len(ids), generator=gen).split(self.train_batch_size):
            b = b.to(ids.device)
            rows = index[b]
            n_words = int(lengths[b].max())
            im = finish(self.net_["img"](images[rows]), self.loss)
            words = self.net_["emb"](ids[b, :n_words])
            txt = finish(TEXT_HEADS[self.encoder][1](self.net_, words, lengths[b]), self.loss)
            loss = ranking_loss(
                SCORES[self.loss](im, txt), rows[:, None] == rows[None, :], self.margin, self.max_violation
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
            opt.step()
            total += loss.detach()
            bar.update(1)
        return float(total) / len(ids)

    def _val_rsum(self, val) -> float | None:
        if val is None:
            return None
        from cca_bench.metrics import evaluate_retrieval

        return r_sum(evaluate_retrieval(self.embed_images(val), self.embed_texts(val), val.image_index))

    # --- CrossModalModel protocol ---------------------------------------------------------------
    def _check_fitted(self):
        if not hasattr(self, "net_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("this VSE is not fitted yet: call fit_features first")

    def embed_images(self, features) -> np.ndarray:
        """FeatureSet (or an (n, d_i) array) -> (n, dim) float32 unit-norm image embeddings."""
        import torch

        self._check_fitted()
        x = np.asarray(getattr(features, "images", features))
        if x.ndim != 2 or x.shape[1] != self.image_dim_:
            raise UserError(f"vse was fitted on {self.image_dim_}-d image features, got shape {x.shape}")
        x = torch.from_numpy(l2_rows(x))
        dev = self.net_["img"].weight.device
        with torch.no_grad():
            out = [finish(self.net_["img"](c.to(dev)), self.loss).cpu() for c in x.split(EMBED_BATCH)]
        return torch.cat(out).numpy() if out else np.zeros((0, self.dim), np.float32)

    def embed_texts(self, features) -> np.ndarray:
        """FeatureSet (its ``tokens``) or a list of token lists -> (n, dim) float32 caption embeddings."""
        import torch
        import torch.nn.functional as F

        self._check_fitted()
        tokens = getattr(features, "tokens", features)
        if len(tokens) == 0:
            return np.zeros((0, self.dim), np.float32)
        table, index = self._lookup(tokens, getattr(features, "word_vectors", None))
        ids, lengths = (torch.from_numpy(a) for a in token_ids(tokens, index))
        dev, encode = table.device, TEXT_HEADS[self.encoder][1]
        out = []
        with torch.no_grad():
            for i, n in zip(ids.split(EMBED_BATCH), lengths.split(EMBED_BATCH)):
                words = F.embedding(i[:, : int(n.max())].to(dev), table)
                out.append(finish(encode(self.net_, words, n.to(dev)), self.loss).cpu())
        return torch.cat(out).numpy()

    def _lookup(self, tokens, word_vectors):
        """The embedding table (V', d_w) and word -> row index used to embed ``tokens``.

        With frozen embeddings (and ``open_vocabulary``) the model's table is the word-vector table itself,
        so words missing from the training vocabulary but present in ``word_vectors()`` get their vectors
        (new rows after the saved ones); other unknown words map to ``<unk>``.
        """
        import torch

        table, index = self.net_["emb"].weight.detach(), self._index()
        if self.trainable_embeddings or not self.open_vocabulary or not callable(word_vectors):
            return table, index
        new = sorted({w for toks in tokens for w in toks} - index.keys())
        if not new:
            return table, index
        wv = word_vectors()
        found = [(w, v) for w, v in ((w, wv.get(w)) for w in new) if v is not None]
        if not found:
            return table, index
        extra = torch.from_numpy(np.stack([v for _, v in found]).astype(np.float32)).to(table.device)
        index |= {w: len(index) + k for k, (w, _) in enumerate(found)}
        return torch.cat([table, extra]), index

    def save(self, path, extra: dict | None = None):
        """``path.safetensors`` (the weights) + ``path.json`` (params, vocabulary, training history)."""
        self._check_fitted()
        arrays = {k: v.detach().cpu().numpy() for k, v in self.net_.state_dict().items()}
        config = {
            "method": "vse",
            "params": self.get_params(),
            "vocab": self.vocab_,
            "image_dim_": self.image_dim_,
            "word_dim_": self.word_dim_,
            "n_samples_": self.n_samples_,
            "best_epoch_": self.best_epoch_,
            "history_": self.history_,
            **(extra or {}),
        }
        save_arrays(path, arrays, config)

    @classmethod
    def load(cls, path):
        import torch

        required = {
            "vocab": list,
            "image_dim_": int,
            "word_dim_": int,
            "n_samples_": int,
            "best_epoch_": int,
            "history_": list,
        }
        model, arrays, config = load_saved(cls, path, "vse", required=required)
        model.vocab_ = list(config["vocab"])
        for k in ("image_dim_", "word_dim_", "n_samples_", "best_epoch_", "history_"):
            setattr(model, k, config[k])
        emb = np.zeros((len(model.vocab_), model.word_dim_), dtype=np.float32)
        model.net_ = build_net(model.image_dim_, emb, model.dim, model.encoder)
        ints = [k for k, v in arrays.items() if not np.issubdtype(v.dtype, np.floating)]
        if ints:
            raise UserError(
                f"the fitted model {Path(path).name}.safetensors: array {ints[0]!r} is "
                f"{arrays[ints[0]].dtype}, expected floating point"
            )
        try:
            model.net_.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in arrays.items()})
        except RuntimeError as e:  # missing / unexpected keys, other shapes
            detail = " ".join(str(e).split())[:300]
            raise UserError(
                f"the fitted model {Path(path).name}.safetensors does not fit a vse network of its own config: {detail}"
            ) from None
        model.net_.to(torch_device(model.device)).eval()
        model.config_ = config
        return model
