"""The CLI against a hostile, realistic user: every case is one line on stderr, the right non-zero exit, no
traceback, and no file written, changed or left behind (the whole data + results tree is compared)."""

import errno
import json
import os
import shutil
import stat
import subprocess

import numpy as np
import pytest

from cca_bench.__main__ import main

SMALL = ["-D", "n_train=60", "-D", "n_val=10", "-D", "n_test=20", "-q"]
FEAT = "glove50_tinyimage"
MODEL = "cca__shapes[n_test=20,n_train=60,n_val=10]__glove50_tinyimage"


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """One fitted model, its cached features, one stored run and a rendered RESULTS.md, shared (copied) by
    every case."""
    base = tmp_path_factory.mktemp("fitted")
    roots = ["--data-root", str(base / "data"), "--results-root", str(base / "results")]
    assert main(["generate", "cca", "shapes", FEAT, "--reg", "1e-2", *SMALL, *roots]) == 0
    assert main(["run_benchmark", "cca", "shapes", "test", FEAT, *SMALL, *roots]) == 0
    assert main(["compare", "-q", *roots]) == 0
    return base


@pytest.fixture
def case(fitted, tmp_path):
    """A private copy of the fitted tree: (folder, its --data-root/--results-root arguments)."""
    shutil.copytree(fitted, tmp_path / "w", symlinks=True)
    w = tmp_path / "w"
    return w, ["--data-root", str(w / "data"), "--results-root", str(w / "results")]


def snapshot(folder) -> dict:
    """Every entry under ``folder``: its type, size, modification time and (for files) content hash."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            digest = None
            if stat.S_ISREG(st.st_mode):
                import hashlib

                with open(p, "rb") as f:
                    digest = hashlib.sha1(f.read()).hexdigest()
            out[os.path.relpath(p, folder)] = (stat.S_IFMT(st.st_mode), st.st_size if digest else 0, digest)
    return out


def unchanged(before: dict, after: dict) -> bool:
    """No entry changed or vanished, and the only new ones are finished feature-cache entries (encoded
    features are kept when a later step fails: they are right, and the next run needs them)."""
    new = set(after) - set(before)
    cache = all(p.startswith(os.path.join("data", "cache")) and p.endswith((".npy", ".json", "cache")) for p in new)
    return cache and all(after.get(p) == v for p, v in before.items())


# ------------------------------------------------------------------------------------------- set-ups
# each takes the case folder and returns extra argv pieces (or None); they may change files before the run


def resave_model(w, change):
    """Rewrite the fitted model's safetensors with ``change(arrays, config)`` applied, self-consistently (its
    model_id matches), so that only the method's own checks can catch it."""
    from cca_bench.methods.base import load_arrays, save_arrays

    path = w / "results" / "models" / MODEL
    arrays, config = load_arrays(path)
    config.pop("model_id")
    change(arrays, config)
    save_arrays(path, arrays, config)


def drop_key(w):
    resave_model(w, lambda a, c: a.pop("mean_x_"))


def bad_shape(w):
    resave_model(w, lambda a, c: a.__setitem__("mean_x_", a["mean_x_"][:5]))


def int_weights(w):
    resave_model(w, lambda a, c: a.__setitem__("x_weights_", a["x_weights_"].astype(np.int32)))


def no_config_key(w):
    resave_model(w, lambda a, c: c.pop("n_components_"))


def string_components(w):
    resave_model(w, lambda a, c: c.__setitem__("n_components_", "5"))


def alien_param(w):
    resave_model(w, lambda a, c: c["params"].__setitem__("colour", "red"))


def flip_a_weight_byte(w):
    st = w / "results" / "models" / f"{MODEL}.safetensors"
    data = bytearray(st.read_bytes())
    data[-5] ^= 0xFF  # inside the last array's bytes: the file still parses, its content no longer matches
    st.write_bytes(bytes(data))


def empty_model(w):
    (w / "results" / "models" / f"{MODEL}.safetensors").write_bytes(b"")


def model_as_vse(w):
    models = w / "results" / "models"
    for ext in ("safetensors", "json"):
        shutil.copy(models / f"{MODEL}.{ext}", models / f"{MODEL.replace('cca__', 'vse__')}.{ext}")


def a_file(w):
    (w / "afile").write_text("not a folder")


def fifo(w):
    os.mkfifo(w / "fifo.html")


def full_device(w):
    try:
        os.mknod(w / "full", 0o666 | stat.S_IFCHR, os.makedev(1, 7))  # the device /dev/full is
    except PermissionError:
        pytest.skip("creating a device node needs root")


def not_an_image(w):
    (w / "photo.jpg").write_text("this is text")


def karpathy(w, filename, link=None):
    folder = w / "data" / "mine"
    (folder / "images").mkdir(parents=True)
    images = [{"filename": f"{k}.png", "split": "train", "sentences": [{"raw": f"a red circle {k}"}]} for k in range(3)]
    images[1]["filename"] = filename
    (folder / "dataset.json").write_text(json.dumps({"images": images}))
    if link:
        os.symlink(link, folder / "images" / "link.png")


def precomp(w, caps_bytes=None, ims=None, test_dim=6):
    folder = w / "data" / "pre"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, dim in (("train", 6), ("test", test_dim)):
        np.save(folder / f"{split}_ims.npy", rng.standard_normal((4, dim)).astype(np.float32))
        (folder / f"{split}_caps.txt").write_text("\n".join(f"a red circle {k}" for k in range(20)) + "\n")
    if caps_bytes is not None:
        (folder / "train_caps.txt").write_bytes(caps_bytes)
    if ims is not None:
        (folder / "train_ims.npy").write_bytes(ims)


def glove_files(w):
    """Two GloVe-format files for the shapes vocabulary, 3-d and 4-d: a model fitted on the first meets test
    features of the second (--text-path is not part of a model's name)."""
    from cca_bench.datasets import get_dataset

    ds = get_dataset("shapes", w / "data", n_train=60, n_val=10, n_test=20)
    words = sorted({t for s in ds.splits.values() for toks in s.tokens for t in toks})
    rng = np.random.default_rng(0)
    for dim in (3, 4):
        rows = [f"{word} " + " ".join(f"{v:.4f}" for v in rng.standard_normal(dim)) for word in words]
        (w / f"v{dim}.txt").write_text("\n".join(rows) + "\n")
    argv = [
        "generate",
        "cca",
        "shapes",
        "glove_tinyimage",
        "--text-path",
        str(w / "v3.txt"),
        "--reg",
        "1e-2",
        *SMALL,
        "--data-root",
        str(w / "data"),
        "--results-root",
        str(w / "results"),
    ]
    assert main(argv) == 0


def png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def parquet(w, captions, image=None):
    """A Flickr30k-style parquet dump data/pq: three train rows whose caption column holds ``captions``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (w / "data" / "pq").mkdir(parents=True)
    images = image or [{"bytes": png(), "path": f"{k}.png"} for k in range(3)]
    rows = [{"image": images[k], "caption": captions[k], "split": "train"} for k in range(3)]
    pq.write_table(pa.Table.from_pylist(rows), w / "data" / "pq" / "train.parquet")


def coco(w, image_id=1, cocoid=1, text="a red circle"):
    """A COCO captions folder data/coco2: one annotation of image ``image_id``, the split file's ``cocoid``."""
    folder = w / "data" / "coco2"
    (folder / "images").mkdir(parents=True)
    (folder / "images" / "a.png").write_bytes(png())
    ann = {
        "images": [{"id": 1, "file_name": "a.png"}],
        "annotations": [{"image_id": image_id, "id": 9, "caption": text}],
    }
    (folder / "captions_train2014.json").write_text(json.dumps(ann))
    split = {"images": [{"filename": "a.png", "split": "train", "cocoid": cocoid, "sentences": []}]}
    (folder / "dataset_coco.json").write_text(json.dumps(split))


def flickr8k(w, token_bytes):
    folder = w / "data" / "f8k"
    folder.mkdir(parents=True)
    (folder / "a.jpg").write_bytes(png())
    (folder / "Flickr8k.token.txt").write_bytes(token_bytes)
    (folder / "Flickr_8k.trainImages.txt").write_text("a.jpg\n")


def shard(w, members, cut=None):
    """data/wds/train/000000.tar of (name, bytes) members; ``cut``: keep only that many bytes of the file."""
    import io
    import tarfile

    (w / "data" / "wds" / "train").mkdir(parents=True)
    path = w / "data" / "wds" / "train" / "000000.tar"
    with tarfile.open(path, "w") as tar:
        for name, payload in members:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    if cut is not None:
        path.write_bytes(path.read_bytes()[:cut])


WDS = [
    (f"{k:06d}.{ext}", png() if ext == "png" else f"a red circle {k}".encode())
    for k in range(3)
    for ext in ("png", "txt")
]


def karpathy_caption(w, raw):
    folder = w / "data" / "kp"
    (folder / "images").mkdir(parents=True)
    (folder / "images" / "a.png").write_bytes(png())
    image = {"filename": "a.png", "split": "train", "sentences": [{"raw": "a red circle"}, {"raw": raw}]}
    (folder / "dataset.json").write_text(json.dumps({"images": [image]}))


def planted_link(w):
    """A Karpathy folder whose parsed form is cached; then an image below a subfolder becomes a symlink to a
    photo outside the dataset (the fingerprinted images/ folder does not change)."""
    from cca_bench.datasets import get_dataset

    folder = w / "data" / "kp"
    (folder / "images" / "sub").mkdir(parents=True)
    (folder / "images" / "sub" / "a.png").write_bytes(png())
    image = {"filename": "a.png", "filepath": "sub", "split": "train", "sentences": [{"raw": "a red circle"}]}
    (folder / "dataset.json").write_text(json.dumps({"images": [image]}))
    get_dataset("kp", w / "data")  # writes the parsed-dataset cache entry
    (w / "outside.png").write_bytes(png())
    os.remove(folder / "images" / "sub" / "a.png")
    os.symlink(w / "outside.png", folder / "images" / "sub" / "a.png")


def huge_npy(path, shape=(100_000, 250_000)):
    """A 4 KB .npy whose header claims ``shape`` float32 (93 GiB): only the header is true."""
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": shape})
    path.write_bytes(buf.getvalue() + bytes(4096 - len(buf.getvalue())))


def embeddings(w, images=(20, 3), texts=(100, 3), huge=None, safetensors=False):
    """img.npy / txt.npy (or img.safetensors) of the given shapes for `evaluate` on shapes/test; ``huge`` names
    the one that is a header claiming 93 GiB instead."""
    if safetensors:
        from safetensors.numpy import save_file

        save_file({"x": np.ones(images, np.float32)}, str(w / "img.safetensors"))
    else:
        np.save(w / "img.npy", np.ones(images, np.float32))
    np.save(w / "txt.npy", np.ones(texts, np.float32))
    if huge:
        huge_npy(w / huge)


def fifo_photo(w):
    """photo.jpg as a FIFO. A writer thread unblocks a reader that opens it anyway (a regression then fails on
    the message instead of hanging the suite); with no reader it gives up after 10 s."""
    import threading
    import time

    path = w / "photo.jpg"
    os.mkfifo(path)

    def write_if_read():
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: nobody has it open for reading
                time.sleep(0.05)
                continue
            os.write(fd, b"not an image")
            os.close(fd)
            return

    threading.Thread(target=write_if_read, daemon=True).start()


def layout_gen(name):
    return ["generate", "cca", name, FEAT]


GEN = ["generate", "cca", "shapes", FEAT, *SMALL]
RUN = ["run_benchmark", "cca", "shapes", "test", FEAT, *SMALL]
SEARCH = ["search", "cca", "shapes", FEAT, "--text", "a red circle", *SMALL]
W = "{w}"  # replaced by the case folder in argv
EVAL = ["evaluate", "shapes", "test", "--images", f"{W}/img.npy", "--texts", f"{W}/txt.npy", "--name", "m", *SMALL]

CASES = [
    # names: datasets, encoders, methods, splits
    ("dataset typo", None, ["generate", "cca", "shapez", FEAT, *SMALL], 2, "did you mean 'shapes'"),
    (
        "features without image encoder",
        None,
        ["generate", "cca", "shapes", "glove50", *SMALL],
        2,
        "names no image encoder",
    ),
    (
        "features with empty image part",
        None,
        ["generate", "cca", "shapes", "glove50_", *SMALL],
        2,
        "names no image encoder",
    ),
    (
        "image encoder typo",
        None,
        ["generate", "cca", "shapes", "glove50_tinyimag", *SMALL],
        2,
        "did you mean 'tinyimage'",
    ),
    ("method typo", None, ["generate", "ccca", "shapes", FEAT, *SMALL], 2, "did you mean 'cca'"),
    ("split typo", None, ["run_benchmark", "cca", "shapes", "tset", FEAT, *SMALL], 2, "no split 'tset'"),
    (
        "model never generated",
        None,
        ["run_benchmark", "cca", "shapes", "test", "glove50_efficientnet", *SMALL],
        2,
        "run `generate` first",
    ),
    # options
    ("device tpu", None, [*RUN, "--device", "tpu"], 2, "--device 'tpu'"),
    ("device cuda without GPU, features cached", None, [*RUN, "--device", "cuda"], 2, "no CUDA GPU"),
    ("device cuda:7", None, [*GEN, "--device", "cuda:7"], 2, "--device cuda:7"),
    ("one training image", None, ["generate", "cca", "shapes", FEAT, "-D", "n_train=1", "-q"], 2, "do not vary"),
    ("dataset option typo", None, [*GEN, "-D", "n_trian=3"], 2, "unknown option 'n_trian'"),
    (
        "dataset option not a number",
        None,
        ["generate", "cca", "shapes", FEAT, "-D", "n_train=many"],
        2,
        "not a valid integer",
    ),
    ("k = 0", None, [*SEARCH, "-k", "0"], 2, "expected a whole number >= 1"),
    ("tag with a slash", None, [*GEN, "--tag", "a/b"], 2, "--tag"),
    ("protocol 1k on 20 images", None, [*RUN, "--protocol", "1k"], 2, "multiple of 1000"),
    ("cv flags without --cv", None, [*GEN, "--cv-reg", "1"], 2, "need --cv"),
    ("unknown command", None, ["frobnicate"], 2, "unknown command 'frobnicate'"),
    # roots
    ("results root is a file", a_file, [*RUN, "--results-root", f"{W}/afile"], 2, "is a file, not a folder"),
    ("data root is a file", a_file, [*RUN, "--data-root", f"{W}/afile"], 2, "is a file, not a folder"),
    # compare
    ("compare dataset typo", None, ["compare", "--dataset", "shpes"], 2, "did you mean 'shapes'"),
    ("compare split typo", None, ["compare", "--split", "tset"], 2, "did you mean 'test'"),
    ("compare method typo", None, ["compare", "--method", "ccca"], 2, "did you mean 'cca'"),
    ("compare --csv to a directory", None, ["compare", "--csv", W], 2, "is a directory"),
    # damaged models
    ("model of zero bytes", empty_model, RUN, 2, "cannot read the fitted model"),
    ("model without an array", drop_key, RUN, 2, "has no array 'mean_x_'"),
    ("model array of another shape", bad_shape, RUN, 2, "'mean_x_' has shape (5,)"),
    ("model with integer weights", int_weights, RUN, 2, "expected floating point"),
    ("model config without a key", no_config_key, RUN, 2, "has no 'n_components_'"),
    ("model with an unknown param", alien_param, RUN, 2, "does not take"),
    ("model config of the wrong type", string_components, RUN, 2, "config 'n_components_' is '5', not of the"),
    ("batch size 0", None, [*GEN, "--batch-size", "0"], 2, "expected a whole number >= 1"),
    ("model bytes altered", flip_a_weight_byte, RUN, 2, "damaged or was altered"),
    (
        "cca model under the vse name",
        model_as_vse,
        ["run_benchmark", "vse", "shapes", "test", FEAT, *SMALL],
        2,
        "holds a 'cca' model, not vse",
    ),
    # outputs
    ("html to a directory", None, [*SEARCH, "--html", W], 2, "is a directory"),
    ("html below a file", a_file, [*SEARCH, "--html", f"{W}/afile/page.html"], 2, "is a file, not a folder"),
    ("html to a FIFO nobody reads", fifo, [*SEARCH, "--html", f"{W}/fifo.html"], 2, "no process is reading"),
    ("html to a full device", full_device, [*SEARCH, "--html", f"{W}/full"], 1, "no space left on device"),
    # queries
    ("search text without words", None, ["search", "cca", "shapes", FEAT, "--text", "!!!", *SMALL], 2, "holds no word"),
    (
        "search photo missing",
        None,
        ["search", "cca", "shapes", FEAT, "--image", f"{W}/none.jpg", *SMALL],
        2,
        "image file not found",
    ),
    (
        "search photo not an image",
        not_an_image,
        ["search", "cca", "shapes", FEAT, "--image", f"{W}/photo.jpg", *SMALL],
        2,
        "cannot read image",
    ),
    (
        "search photo is a FIFO",
        fifo_photo,
        ["search", "cca", "shapes", FEAT, "--image", f"{W}/photo.jpg", *SMALL],
        2,
        "photo.jpg is not a regular file (a FIFO, device or folder)",
    ),
    (
        "search photo is a folder",
        lambda w: (w / "photo.jpg").mkdir(),
        ["search", "cca", "shapes", FEAT, "--similar", f"{W}/photo.jpg", *SMALL],
        2,
        "is not a regular file",
    ),
    # inputs read from data files
    (
        "image entry absolute",
        lambda w: karpathy(w, "/etc/hostname"),
        ["generate", "cca", "mine", FEAT],
        2,
        "images[1] ('/etc/hostname'): absolute path",
    ),
    (
        "image entry ../",
        lambda w: karpathy(w, "../../../etc/hostname"),
        ["generate", "cca", "mine", FEAT],
        2,
        "leaves the dataset folder",
    ),
    (
        "image entry symlink out",
        lambda w: karpathy(w, "link.png", link="/etc/hostname"),
        ["generate", "cca", "mine", FEAT],
        2,
        "images[1] ('link.png'): path 'link.png' leaves",
    ),
    (
        "UTF-16 caption file",
        lambda w: precomp(w, caps_bytes="a red circle\n".encode("utf-16")),
        ["generate", "cca", "pre", "glove50_precomp"],
        2,
        "is UTF-16 text",
    ),
    (
        "_ims.npy that is not a .npy",
        lambda w: precomp(w, ims=b"PK\x03\x04 a zip file"),
        ["generate", "cca", "pre", "glove50_precomp"],
        2,
        "as a numeric .npy array",
    ),
    (
        "pickled _ims.npy",
        lambda w: precomp(w, ims=_pickled_npy()),
        ["generate", "cca", "pre", "glove50_precomp"],
        2,
        "as a numeric .npy array",
    ),
    (
        "train/test widths differ in a precomp folder",
        lambda w: precomp(w, test_dim=8),
        ["generate", "cca", "pre", "glove50_precomp"],
        2,
        "test_ims.npy has 8 feature columns but train_ims.npy has 6",
    ),
    # dataset layouts: what they cannot read faithfully is refused, naming the file and row (issue 18 item 5)
    (
        "parquet null caption cell",
        lambda w: parquet(w, ["a red circle", None, "a blue square"]),
        layout_gen("pq"),
        2,
        "train.parquet row 1 (caption cell): a caption must be text, got null",
    ),
    (
        "parquet bare struct caption cell",
        lambda w: parquet(w, [{"raw": f"a red circle {k}", "tokens": ["a"]} for k in range(3)]),
        layout_gen("pq"),
        2,
        "train.parquet row 0 (caption cell): a caption must be text, got dict",
    ),
    (
        "parquet binary caption cell",
        lambda w: parquet(w, [b"caf\xe9"] * 3),
        layout_gen("pq"),
        2,
        "row 0 (caption cell): a caption must be text, got bytes",
    ),
    (
        "parquet integer caption cell",
        lambda w: parquet(w, [1, 2, 3]),
        layout_gen("pq"),
        2,
        "row 0 (caption cell): a caption must be text, got int",
    ),
    (
        "parquet null inside a caption list",
        lambda w: parquet(w, [["a red circle"], ["a red circle", None], []]),
        layout_gen("pq"),
        2,
        "train.parquet row 1 caption 1: a caption must be text, got null",
    ),
    (
        "parquet plain-binary image column",
        lambda w: parquet(w, [["a red circle"]] * 3, image=[png()] * 3),
        layout_gen("pq"),
        2,
        "column 'image' is binary; only a struct {bytes, path}",
    ),
    (
        "COCO annotation image_id a string",
        lambda w: coco(w, image_id="1"),
        layout_gen("coco2"),
        2,
        "captions_train2014.json: annotations[0] 'image_id': COCO image id '1' is not an integer",
    ),
    (
        "COCO split file cocoid a float",
        lambda w: coco(w, cocoid=1.0),
        layout_gen("coco2"),
        2,
        "dataset_coco.json: images[0] 'cocoid': COCO image id 1.0 is not an integer",
    ),
    (
        "COCO caption with a lone surrogate",
        lambda w: coco(w, text="caf\ud800"),
        layout_gen("coco2"),
        2,
        "annotations[0]: caption holds a lone surrogate",
    ),
    (
        "Karpathy caption with a lone surrogate",
        lambda w: karpathy_caption(w, "caf\udce9"),
        layout_gen("kp"),
        2,
        "dataset.json: images[0] sentences[1]: caption holds a lone surrogate",
    ),
    (
        "Karpathy caption null",
        lambda w: karpathy_caption(w, None),
        layout_gen("kp"),
        2,
        "images[0] sentences[1]: a caption must be text, got null",
    ),
    (
        "Flickr8k token file in Latin-1",
        lambda w: flickr8k(w, b"a.jpg#0\ta red circle\na.jpg#1\tcaf\xe9\n"),
        layout_gen("f8k"),
        2,
        "Flickr8k.token.txt line 2: not UTF-8 text (byte 0xe9",
    ),
    (
        "webdataset caption in Latin-1",
        lambda w: shard(w, [*WDS[:3], ("000001.txt", b"caf\xe9")]),
        layout_gen("wds"),
        2,
        "000000.tar: member '000001.txt' line 1: not UTF-8 text",
    ),
    (
        "webdataset shard cut inside a member",
        lambda w: shard(w, WDS, cut=512 * 9 + 20),
        layout_gen("wds"),
        2,
        "000000.tar: truncated: member",
    ),
    (
        "webdataset shard cut between members",
        lambda w: shard(w, WDS, cut=512 * 6),
        layout_gen("wds"),
        2,
        "truncated or damaged at byte 3072 (after sample '000001')",
    ),
    (
        "cached image path now a symlink out",
        planted_link,
        layout_gen("kp"),
        2,
        "cached image: path 'sub/a.png' leaves the dataset folder",
    ),
    # bring your own: .npy headers checked before any data is read, zero-width embeddings (issue 18 item 6)
    (
        "evaluate: a 4 KB .npy claiming 93 GiB",
        lambda w: embeddings(w, huge="img.npy"),
        EVAL,
        2,
        "img.npy: its header claims a 100000 x 250000 float32 array (93.1 GiB) but the file holds",
    ),
    (
        "evaluate: --image-index .npy claiming 93 GiB",
        lambda w: embeddings(w, huge="index.npy"),
        [*EVAL, "--image-index", f"{W}/index.npy"],
        2,
        "index.npy: its header claims",
    ),
    (
        "evaluate: zero-width embeddings",
        lambda w: embeddings(w, (20, 0), (100, 0)),
        EVAL,
        2,
        "img.npy: zero-width embeddings (20 x 0)",
    ),
    (
        "evaluate: zero-width safetensors",
        lambda w: embeddings(w, (20, 0), (100, 0), safetensors=True),
        [*EVAL[:4], f"{W}/img.safetensors", *EVAL[5:]],
        2,
        "img.safetensors: zero-width embeddings (20 x 0)",
    ),
    (
        "precomp _ims.npy claiming 93 GiB",
        lambda w: (precomp(w), huge_npy(w / "data" / "pre" / "train_ims.npy")),
        ["generate", "cca", "pre", "glove50_precomp"],
        2,
        "train_ims.npy: its header claims a 100000 x 250000",
    ),
    (
        "precomp _ims.npy of zero width",
        lambda w: (precomp(w), np.save(w / "data" / "pre" / "train_ims.npy", np.ones((4, 0), np.float32))),
        ["generate", "cca", "pre", "glove50_precomp"],
        2,
        "at least one feature), got float32 (4, 0)",
    ),
    (
        "test features of another width than the model's",
        glove_files,
        ["run_benchmark", "cca", "shapes", "test", "glove_tinyimage", "--text-path", f"{W}/v4.txt", *SMALL],
        2,
        "text features",
    ),
]


def _pickled_npy() -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return buf.getvalue()


@pytest.mark.parametrize("name, setup, argv, code, message", CASES, ids=[c[0] for c in CASES])
def test_hostile_case(name, setup, argv, code, message, case, capsys):
    w, roots = case
    if "cuda" in name:
        import torch

        if torch.cuda.is_available():
            pytest.skip("hardware: this machine has a GPU (the case needs none)")
    if setup is not None:
        setup(w)
    argv = [a.replace(W, str(w)) for a in argv]
    roots = [a for flag, value in zip(roots[::2], roots[1::2]) if flag not in argv for a in (flag, value)]
    before = snapshot(w)
    capsys.readouterr()
    try:
        rc = main([*argv, *roots])
    except SystemExit as e:  # argparse
        rc = e.code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == code, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert "Traceback" not in err
    assert unchanged(before, snapshot(w))  # nothing written, changed or left behind (RESULTS.md included)
    if name == "html to a full device":
        assert stat.S_ISCHR(os.lstat(w / "full").st_mode)  # the device node is still a device node


def test_quiet_keeps_warnings(case):
    """-q drops progress bars and status lines, not warnings (its help says so): captions without a known word
    are warned about in a real process, whose stderr holds that line and nothing else."""
    import sys

    w, roots = case
    precomp(w, caps_bytes="\n".join(["qxzvbnq zzqqxxvw"] * 3 + [f"a red circle {k}" for k in range(17)]).encode())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(
        [sys.executable, "-m", "cca_bench", "generate", "cca", "pre", "glove50_precomp", "--reg", "1e-2", "-q", *roots],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr.splitlines() == [
        "warning: 3 of 20 captions of pre/train had no known glove50 word and were encoded as zero vectors"
    ], out.stderr


def test_matrix_has_at_least_30_cases():
    assert len(CASES) >= 30


def test_features_without_image_encoder_do_not_suggest_themselves(case, capsys):
    w, roots = case
    assert main(["generate", "cca", "shapes", "glove50", *roots]) == 2
    assert "did you mean 'glove50'" not in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ names are not paths
# A dataset name names models, runs and parsed-dataset cache files: one with '/', '..' or an absolute path wrote
# them outside both roots. Each name below points at a real, readable precomp folder (or the data root itself),
# so only the name check stands between the command and a successful run.

NAME_COMMANDS = {
    "generate": ["generate", "cca", "{name}", "glove50_precomp", "--reg", "1e-2"],
    "run_benchmark": ["run_benchmark", "cca", "{name}", "test", "glove50_precomp"],
    "evaluate": ["evaluate", "{name}", "test", "--images", f"{W}/img.npy", "--texts", f"{W}/txt.npy", "--name", "m"],
    "export-split": ["export-split", "{name}", "test", f"{W}/export"],
    "search": ["search", "cca", "{name}", "glove50_precomp", "--text", "a red circle"],
}
NAMES = {
    "parent": "../../outside",
    "absolute": "{tmp}/outside",
    "nested": "sub/pre",
    "dotdot": "..",
    "dot": ".",
    "empty": "",
}


def precomp_at(folder):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        np.save(folder / f"{split}_ims.npy", rng.standard_normal((4, 6)).astype(np.float32))
        (folder / f"{split}_caps.txt").write_text("\n".join(f"a red circle {k}" for k in range(20)) + "\n")


@pytest.mark.parametrize("command", NAME_COMMANDS)
@pytest.mark.parametrize("kind", NAMES)
def test_dataset_names_are_not_paths(command, kind, case, capsys):
    w, roots = case
    tmp = w.parent
    precomp_at(tmp / "outside")
    precomp_at(w / "data" / "sub" / "pre")
    np.save(w / "img.npy", np.ones((4, 3), np.float32))
    np.save(w / "txt.npy", np.ones((20, 3), np.float32))
    name = NAMES[kind].format(tmp=tmp)
    argv = [a.replace("{name}", name).replace(W, str(w)) for a in NAME_COMMANDS[command]]
    before = snapshot(tmp)
    capsys.readouterr()
    rc = main([*argv, *roots])
    lines = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and f"dataset {name!r} is not a name" in lines[0], lines
    assert snapshot(tmp) == before  # nothing written anywhere: not in the roots, not beside them


def test_a_dataset_folder_with_dots_in_its_name_still_works(case):
    w, roots = case
    precomp_at(w / "data" / "my..data")
    assert main(["generate", "cca", "my..data", "glove50_precomp", "--reg", "1e-2", "-q", *roots]) == 0
    assert list((w / "results" / "models").glob("cca__my..data__glove50_precomp.safetensors"))


# ------------------------------------------------------------------------------------ full or read-only roots


@pytest.fixture
def tiny_mount(tmp_path):
    """A 64 KiB tmpfs (root only): (folder, mount options remount function)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_full_results_root_on_a_real_tmpfs(case, tiny_mount, capsys):
    """generate into a 64 KiB file system: the model does not fit; one line, exit 1, nothing left there."""
    w, roots = case
    roots[3] = str(tiny_mount / "results")
    (tiny_mount / "ballast").write_bytes(b"\0" * 48 * 1024)
    rc = main([*GEN, "--reg", "1e-2", *roots])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "no space left on device" in err[0], err
    assert [p.name for p in tiny_mount.rglob("*") if p.is_file()] == ["ballast"]


def test_read_only_results_root_on_a_real_tmpfs(case, tiny_mount, capsys):
    w, roots = case
    (tiny_mount / "results").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_mount)], check=True)
    roots[3] = str(tiny_mount / "results")
    rc = main([*GEN, "--reg", "1e-2", *roots])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "read-only file system" in err[0], err


@pytest.mark.parametrize(
    "code, words",
    [(errno.ENOSPC, "no space left"), (errno.EROFS, "read-only file system"), (errno.EACCES, "permission denied")],
)
def test_os_failures_while_writing_are_one_line(code, words, case, capsys, monkeypatch):
    """The same without root: the writer's rename fails as a full, read-only or forbidden disk makes it."""
    w, roots = case

    def refuse(src, dst):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "replace", refuse)
    before = snapshot(w)
    assert main([*RUN, *roots]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0] and "runs/" in err[0], err
    assert snapshot(w) == before  # the temporary file is gone too


def test_interrupt_is_one_line(case, capsys, monkeypatch):
    from cca_bench.features.pipelines import Pipelines

    w, roots = case

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(Pipelines, "encode", interrupted)
    assert main([*RUN, *roots]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("interrupted")


def test_a_bug_still_shows_its_traceback(case, monkeypatch):
    from cca_bench.features.pipelines import Pipelines

    w, roots = case
    monkeypatch.setattr(Pipelines, "encode", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        main([*RUN, *roots])
