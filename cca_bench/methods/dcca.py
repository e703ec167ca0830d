"""Deep CCA: two small MLPs on the frozen features, trained to maximise the canonical correlations of their outputs.

Andrew, Arora, Bilmes & Livescu, ICML 2013 ("Deep Canonical Correlation Analysis"); Yan & Mikolajczyk, CVPR
2015 ("Deep Correlation for Matching Images and Text") apply it to image-text retrieval. Each view passes
through its own MLP (``layers`` hidden ReLU layers of width ``hidden``, then a linear layer to ``dim``); the loss
of a mini-batch is minus the SUM of the canonical correlations of the two outputs (Andrew et al.'s total
correlation, the trace norm of ``T = S11^-1/2 S12 S22^-1/2``), computed as the singular values of the
Cholesky-whitened cross-covariance with ``eps * I`` added to both covariances (cca-zoo's DCCA loss instead takes
the sum of the squared correlations). With ``eps = 0`` the loss of a batch equals minus the sum of the canonical
correlations the suite's own linear CCA finds on the same outputs (``tests/methods/test_dcca.py``).

After training, a linear regularised CCA (:class:`~cca_bench.methods.cca.RegularizedCCA`, reg ``cca_reg``) is
fitted on the train outputs, as Andrew et al. do; the embeddings are its correlation-weighted projections.
Training is Adam over mini-batches of train pairs (each caption with its image), seeded by ``random_state``,
with early stopping on the validation R-sum after each epoch (the loop :func:`cca_bench.methods.vse.early_stopping`
shared with ``vse``). Inputs are standardised per feature with the train means and standard deviations.

dcca trains on one machine (torch, on a GPU when ``device`` has one): its loss is not a sum over pairs, so it has
no ``--backend dask`` (the methods fitted from sums do; docs/cluster.md).
"""

from __future__ import annotations

import numpy as np

from cca_bench.checks import COUNT, LAYERS, NON_NEGATIVE, POSITIVE, Bound, check_memory
from cca_bench.config import torch_device
from cca_bench.errors import UserError
from cca_bench.methods.base import check_arrays, load_saved, save_arrays
from cca_bench.methods.cca import RegularizedCCA
from cca_bench.methods.estimator import PairedEstimator
from cca_bench.methods.vse import available_cores, early_stopping, r_sum, torch_threads
from cca_bench.registry import METHODS

EMBED_BATCH = 4096


def cca_loss(h1, h2, eps: float = 1e-3):
    """Minus the sum of the canonical correlations of two (B, o) batches (torch, differentiable, float64).

    Covariances over the batch (centred, / (B - 1)), ``eps * I`` added to the two auto-covariances; the
    correlations are the singular values of ``L1^-1 S12 L2^-T`` (L = Cholesky factors), which equal those of
    Andrew et al.'s ``S11^-1/2 S12 S22^-1/2``.
    """
    import torch

    h1, h2 = h1.double(), h2.double()
    h1, h2 = h1 - h1.mean(0), h2 - h2.mean(0)
    n, eye = len(h1) - 1, torch.eye(h1.shape[1], dtype=h1.dtype, device=h1.device)
    l1 = torch.linalg.cholesky(h1.T @ h1 / n + eps * eye)
    l2 = torch.linalg.cholesky(h2.T @ h2 / n + eps * torch.eye(h2.shape[1], dtype=h2.dtype, device=h2.device))
    t = torch.linalg.solve_triangular(l1, h1.T @ h2 / n, upper=False)
    t = torch.linalg.solve_triangular(l2, t.T, upper=False).T
    return -torch.linalg.svdvals(t).sum()


def build_mlp(d_in: int, hidden: int, layers: int, d_out: int):
    """``layers`` x (Linear, ReLU) of width ``hidden``, then Linear to ``d_out`` (torch Sequential)."""
    from torch import nn

    mods, width = [], d_in
    for _ in range(layers):
        mods += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    return nn.Sequential(*mods, nn.Linear(width, d_out))


ONE_MACHINE = (
    "dcca trains on one machine (torch, on a GPU when --device has one): its loss is not a sum over "
    "pairs, so it takes no --backend / --dask-scheduler (docs/cluster.md)"
)


@METHODS.register(
    "dcca",
    help="deep CCA (Andrew et al. 2013; Yan & Mikolajczyk 2015): two MLPs on the frozen "
    "features trained with the sum of canonical correlations, early stopping on val R-sum; trains on one "
    "machine (no --backend dask)",
)
class DeepCCA(PairedEstimator):
    """Deep CCA on frozen features, scikit-learn style.

    Args:
        dim: output width of each MLP (the canonical dimensions; at most train_batch_size - 1).
        hidden, layers: width and number of the hidden ReLU layers (0 layers: a linear map).
        lr: Adam learning rate; train_batch_size: pairs per batch (the loss needs more pairs than ``dim``).
        epochs, patience: most epochs; stop after ``patience`` epochs without a better validation R-sum.
        eps: ridge added to the batch covariances in the loss; cca_reg: ridge of the final linear CCA.
        device: "auto" (CUDA when present), "cpu", "cuda"; num_threads: torch threads while training on the CPU
        (0: every core this process may use; as vse's); random_state: initial weights and batch order;
        progress: tqdm bar on stderr.
    Trains on one machine (no Dask backend: its mini-batch loss is not a sum over pairs; docs/cluster.md).
    Fitted: ``net_`` (torch ModuleDict "img", "txt"), ``mean_x_``, ``std_x_``, ``mean_y_``, ``std_y_`` (input
        standardisation), ``cca_`` (RegularizedCCA on the outputs), ``history_``, ``best_epoch_``, ``n_samples_``.
    """

    METHOD = "dcca"
    REFUSED_OPTIONS = {"--backend": ONE_MACHINE, "--dask-scheduler": ONE_MACHINE}
    uses_val = True
    CLI_PARAMS = {  # dcca's own texts: `generate dcca --help` shows these only
        "dim": (COUNT.cli(), "dcca: output width of each network (default 64, below --train-batch-size)"),
        "hidden": (COUNT.cli(), "dcca: width of the hidden layers (default 512)"),
        "layers": (LAYERS.cli(), "dcca: hidden layers per view, 0 to 1000 (default 1)"),
        "lr": (POSITIVE.cli(), "dcca: Adam learning rate (default 1e-3)"),
        "train_batch_size": (Bound(integer=True, low=2).cli(), "dcca: pairs per training batch (default 512)"),
        "epochs": (COUNT.cli(), "dcca: most training epochs (default 50)"),
        "patience": (COUNT.cli(), "dcca: stop after this many epochs without a better validation R-sum (default 5)"),
        "num_threads": (
            int,
            "dcca: torch threads while training on the CPU (default 0: every core this process may use)",
        ),
    }

    CV_GRID = {"dim": ((16, 32, 64, 128), "--cv-dim")}

    def __init__(
        self,
        dim=64,
        hidden=512,
        layers=1,
        lr=1e-3,
        train_batch_size=512,
        epochs=50,
        patience=5,
        eps=1e-3,
        cca_reg=1e-3,
        device="auto",
        num_threads=0,
        random_state=0,
        progress=True,
    ):
        self.dim = dim
        self.hidden = hidden
        self.layers = layers
        self.lr = lr
        self.train_batch_size = train_batch_size
        self.epochs = epochs
        self.patience = patience
        self.eps = eps
        self.cca_reg = cca_reg
        self.device = device
        self.num_threads = num_threads
        self.random_state = random_state
        self.progress = progress

    def check_params(self, n_images: int | None = None, n_captions: int | None = None) -> None:
        """Every option in range, and a batch wider than the output (else its covariance is singular)."""
        for name, bound in (
            ("dim", COUNT),
            ("hidden", COUNT),
            ("layers", LAYERS),
            ("lr", POSITIVE),
            ("train_batch_size", COUNT),
            ("epochs", COUNT),
            ("patience", COUNT),
            ("eps", NON_NEGATIVE),
            ("cca_reg", NON_NEGATIVE),
        ):
            bound.check(name, getattr(self, name))
        check_memory(self.network_bytes(), f"dcca --hidden {self.hidden} --layers {self.layers}")
        if self.train_batch_size <= self.dim:
            raise UserError(
                f"DeepCCA train_batch_size={self.train_batch_size} must exceed dim={self.dim}: a batch "
                "needs more pairs than canonical dimensions"
            )
        if n_captions is not None and n_captions <= self.dim:
            raise UserError(f"DeepCCA dim={self.dim} needs more than {n_captions} train pairs")

    def network_bytes(self, dx: int = 1, dy: int = 1) -> int:
        """A lower bound on the training memory of both networks for inputs of widths ``dx``, ``dy`` (1 when not
        yet known): float32 weights with their gradients and Adam's two moments (4 copies), and one batch's
        activations of every layer, kept for the backward pass."""
        h, n = self.hidden, self.layers
        weights = sum(d * (h if n else self.dim) + max(n - 1, 0) * h * h + (h * self.dim if n else 0) for d in (dx, dy))
        activations = 2 * self.train_batch_size * (n * h + self.dim)
        return 4 * (4 * weights + 2 * activations)

    # --- fitting --------------------------------------------------------------------------------
    _FITTED = "cca_"  # set last: the linear CCA on the trained networks' outputs

    def _fit(self, X, Y, x_index, val=None):
        """Train on images X (n_x, dx), captions Y (n, dy) paired by ``x_index``; ``val``: a FeatureSet."""
        import torch

        self.check_params(len(X), len(Y))
        x_index = np.arange(len(Y)) if x_index is None else np.asarray(x_index, dtype=np.int64)
        X, Y = np.asarray(X, np.float32), np.asarray(Y, np.float32)
        self.mean_x_, self.std_x_ = _standardiser(X, np.bincount(x_index, minlength=len(X)))
        self.mean_y_, self.std_y_ = _standardiser(Y, np.ones(len(Y)))
        dev = torch_device(self.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.random_state)
            self.net_ = self._new_net(X.shape[1], Y.shape[1]).to(dev)
        data = [torch.from_numpy(a).to(dev) for a in (self._scale_x(X), self._scale_y(Y), x_index)]
        self.n_samples_ = len(Y)
        with torch_threads((self.num_threads or available_cores()) if dev == "cpu" else None):
            self._train(data, val)
        return self

    def fit_features(self, train, val=None):
        return self.fit(train.images, train.texts, train.image_index, val=val)

    @classmethod
    def cv_models(cls, train, val, points: list[dict], params: dict):
        """Yield (point, model, val embeddings) per grid point: one training run each (early-stopped on val)."""
        for point in points:
            model = cls(**{**params, **point}).fit_features(train, val)
            yield point, model, model.embed_images(val), model.embed_texts(val)

    def _new_net(self, dx: int, dy: int):
        from torch import nn

        check_memory(
            self.network_bytes(dx, dy),
            f"dcca --hidden {self.hidden} --layers {self.layers} on {dx}- and {dy}-d features",
        )
        return nn.ModuleDict(
            {
                "img": build_mlp(dx, self.hidden, self.layers, self.dim),
                "txt": build_mlp(dy, self.hidden, self.layers, self.dim),
            }
        )

    def _train(self, data, val):
        import torch

        opt = torch.optim.Adam(self.net_.parameters(), lr=self.lr)
        gen = torch.Generator().manual_seed(self.random_state)
        n_batches = -(-len(data[2]) // self.train_batch_size)

        def score():
            self._fit_cca(data)
            return None if val is None else _rsum(self, val)

        self.history_, self.best_epoch_ = early_stopping(
            self.net_,
            lambda bar: self._epoch(data, opt, gen, bar),
            score,
            self.epochs,
            self.patience,
            n_batches,
            "dcca",
            self.progress,
        )
        self._fit_cca(data)  # on the outputs of the kept (best) weights

    def _epoch(self, data, opt, gen, bar) -> float:
        """One pass over the pairs in random batches (a last batch of at most ``dim`` pairs is dropped: its
        covariance would be singular); returns the mean loss per batch (minus the mean sum of correlations)."""
        import torch

        x, y, index = data
        self.net_.train()
        order = torch.randperm(len(index), generator=gen).to(index.device)
        total, n = 0.0, 0
        for b in order.split(self.train_batch_size):
            if len(b) <= self.dim:
                break
            loss = cca_loss(self.net_["img"](x[index[b]]), self.net_["txt"](y[b]), self.eps)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, n = total + float(loss.detach()), n + 1
            bar.update(1)
        self.net_.eval()
        return total / max(n, 1)

    def _fit_cca(self, data) -> None:
        """The final linear CCA on the train outputs of the current weights."""
        x, y, index = data
        hx, hy = self._outputs("img", x), self._outputs("txt", y)
        self.cca_ = RegularizedCCA(reg=self.cca_reg, device="cpu").fit(hx, hy, index.cpu().numpy())

    def _outputs(self, view: str, a) -> np.ndarray:
        """Network outputs (n, dim) float32 of standardised rows (a torch tensor on the net's device)."""
        import torch

        with torch.no_grad():
            parts = [self.net_[view](c).cpu() for c in a.split(EMBED_BATCH)]
        return torch.cat(parts).numpy() if parts else np.zeros((0, self.dim), np.float32)

    # --- embedding ------------------------------------------------------------------------------
    def _scale_x(self, X):
        return ((X - self.mean_x_) / self.std_x_).astype(np.float32)

    def _scale_y(self, Y):
        return ((Y - self.mean_y_) / self.std_y_).astype(np.float32)

    def _widths(self) -> tuple[int, int]:
        return len(self.mean_x_), len(self.mean_y_)

    def _embed(self, a, view: str) -> np.ndarray:
        import torch

        a = np.asarray(a, np.float32)
        scaled = self._scale_x(a) if view == "img" else self._scale_y(a)
        dev = next(self.net_.parameters()).device
        out = self._outputs(view, torch.from_numpy(scaled).to(dev))
        return self.cca_.project_x(out) if view == "img" else self.cca_.project_y(out)

    def _embed_x(self, X) -> np.ndarray:
        """(n, dx) -> (n, dim) float32 correlation-weighted canonical projections."""
        return self._embed(X, "img")

    def _embed_y(self, Y) -> np.ndarray:
        """(n, dy) -> (n, dim) float32 correlation-weighted canonical projections."""
        return self._embed(Y, "txt")

    def params_label(self) -> str:
        """``d=64 h=512x1 ep=12``."""
        ep = f" ep={self.best_epoch_}" if hasattr(self, "best_epoch_") else ""
        return f"d={self.dim} h={self.hidden}x{self.layers}{ep}"

    # --- persistence ----------------------------------------------------------------------------
    _STANDARDISERS = ("mean_x_", "std_x_", "mean_y_", "std_y_")
    _CCA = ("x_weights_", "y_weights_", "canonical_correlations_", "mean_x_", "mean_y_")

    def save(self, path, extra: dict | None = None):
        arrays = {f"net.{k}": v.detach().cpu().numpy() for k, v in self.net_.state_dict().items()}
        arrays |= {k: getattr(self, k) for k in self._STANDARDISERS}
        arrays |= {f"cca.{k}": getattr(self.cca_, k) for k in self._CCA}
        config = {
            "method": self.METHOD,
            "params": self.get_params(),
            "n_samples_": self.n_samples_,
            "best_epoch_": self.best_epoch_,
            "history_": self.history_,
            **(extra or {}),
        }
        save_arrays(path, arrays, config)

    @classmethod
    def load(cls, path):
        import torch

        model, arrays, config = load_saved(
            cls, path, cls.METHOD, required={"n_samples_": int, "best_epoch_": int, "history_": list}
        )
        sizes = check_arrays(
            path,
            arrays,
            {
                "mean_x_": ("dx",),
                "std_x_": ("dx",),
                "mean_y_": ("dy",),
                "std_y_": ("dy",),
                "cca.x_weights_": (model.dim, "k"),
                "cca.y_weights_": (model.dim, "k"),
                "cca.canonical_correlations_": ("k",),
                "cca.mean_x_": (model.dim,),
                "cca.mean_y_": (model.dim,),
            },
        )
        for k in cls._STANDARDISERS:
            setattr(model, k, arrays[k])
        model.net_ = model._new_net(sizes["dx"], sizes["dy"])
        try:
            model.net_.load_state_dict(
                {k[4:]: torch.from_numpy(np.array(v)) for k, v in arrays.items() if k.startswith("net.")}
            )
        except RuntimeError as e:
            raise UserError(
                f"the fitted model {path}.safetensors does not fit a dcca network of its own config: "
                f"{' '.join(str(e).split())[:300]}"
            ) from None
        model.net_.to(torch_device(model.device)).eval()
        model.cca_ = RegularizedCCA(reg=model.cca_reg, device="cpu")
        for k in cls._CCA:
            setattr(model.cca_, k, arrays[f"cca.{k}"])
        model.cca_.n_components_ = sizes["k"]
        model.n_features_in_ = sizes["dx"]
        model.n_samples_, model.best_epoch_, model.history_ = (
            config[k] for k in ("n_samples_", "best_epoch_", "history_")
        )
        model.config_ = config
        return model


def _standardiser(a: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation of the rows of ``a`` (n, d), row i counted ``weights[i]`` times
    (an image once per caption, without copying it), float32; constant features get 1."""
    w = weights.astype(np.float64) / weights.sum()
    mean = w @ a.astype(np.float64)
    std = np.sqrt(np.maximum(w @ (a.astype(np.float64) - mean) ** 2, 0))
    return mean.astype(np.float32), np.where(std > 0, std, 1.0).astype(np.float32)


def _rsum(model, val) -> float:
    from cca_bench.metrics import evaluate_retrieval

    return r_sum(evaluate_retrieval(model.embed_images(val), model.embed_texts(val), val.image_index))
