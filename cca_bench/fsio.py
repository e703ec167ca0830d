"""File primitives every layer uses: the one atomic writer, and the one check on paths read from data files."""

from __future__ import annotations

import errno
import functools
import hashlib
import itertools
import json
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path

from cca_bench.errors import UserError

_TMP = re.compile(r"^(?P<name>.+)\.(?P<pid>\d+)(?:-\d+)?\.tmp$")  # what write_atomic writes beside a target
_SEQ = itertools.count()  # this process's temporary files, numbered: two threads writing one target never share one
_SWEPT: set[str] = set()  # folders already cleared of stale temporary files by this process


def write_atomic(path: Path, write: Callable) -> None:
    """``write(file)`` into a temporary file beside ``path``, then rename it over ``path`` (all or nothing).

    What ``path`` already is decides how it is written, so that an output flag never replaces something that
    is not a plain file of ours (as root, ``--html /dev/full`` used to turn the device node into a file):

    - missing or a regular file: temporary name ``<name>.<pid>-<n>.tmp`` (``n`` numbers this process's writes, so
      two threads writing the same target each write their own file, and the last rename wins whole), then one
      rename;
    - a symlink: the file it points at is written the same way (the link stays); a link through ``/proc``
      (``/dev/stdout`` -> ``/proc/self/fd/1``) or to anything but a regular file is written through in place;
    - a character or block device or a FIFO (``/dev/stdout``, ``/dev/null``, a pipe): written through in
      place, never renamed over; a FIFO nobody reads is a UserError instead of a hang;
    - a directory (or a path below a file): a UserError.

    Temporary files left by a killed process (``*.<pid>-<n>.tmp`` or ``*.<pid>.tmp`` whose pid is not running)
    are removed from the target's folder the first time this process writes there. An OSError (disk full, read-only, no
    permission) is re-raised with ``path`` as its file name.
    """
    path = Path(path)
    target, through = _target(path)
    if through is not None:
        return _write_through(path, write, through)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UserError(f"cannot write {path}: {_first_file(target.parent)} is a file, not a folder") from None
    except OSError as e:
        raise _named(e, target.parent) from None
    sweep_stale_tmp(target.parent)
    tmp = target.with_name(target.name + f".{os.getpid()}-{next(_SEQ)}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, target)
    except OSError as e:
        raise _named(e, path) from None
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: Path, obj) -> None:
    write_atomic(path, lambda f: f.write(json.dumps(obj, indent=2, default=str).encode()))


_OWN_FD = re.compile(r"^/proc/(?:self|thread-self|(?P<pid>\d+))/fd/(?P<fd>\d+)$")


def _target(path: Path) -> tuple[Path, int | bool | None]:
    """(the file to replace atomically, None), or (``path``, how to write through: True, or the number of one
    of this process's own file descriptors that ``path`` names, as ``/dev/stdout`` names 1)."""
    link, hops = path, 0
    while link.is_symlink() and hops < 40:
        nxt = Path(os.readlink(link))
        link = nxt if nxt.is_absolute() else link.parent / nxt
        if str(link).startswith("/proc/"):  # /dev/stdout and friends: the open file of a process
            m = _OWN_FD.match(str(link))
            own = m is not None and (m["pid"] is None or int(m["pid"]) == os.getpid())
            return path, int(m["fd"]) if own else True
        hops += 1
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return link, None  # a new file (or a dangling link: created where it points)
    except NotADirectoryError:
        raise UserError(f"cannot write {path}: {_first_file(path.parent)} is a file, not a folder") from None
    except OSError as e:
        raise _named(e, path) from None
    if stat.S_ISDIR(mode):
        raise UserError(f"cannot write {path}: it is a directory (give a file name)")
    if stat.S_ISREG(mode):
        return Path(os.path.realpath(path)), None
    return path, True  # device, FIFO, socket


def _write_through(path: Path, write: Callable, how: int | bool) -> None:
    """Write into an existing device / FIFO / process link in place (no temporary file, no rename).

    ``how`` = one of our own file descriptors (``/dev/stdout`` -> 1): written through a duplicate of it, so
    the bytes land after what this process printed there, whatever that descriptor is (pipe, terminal,
    a file the shell redirected to)."""
    import sys

    try:
        if how is True:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            os.set_blocking(fd, True)
        else:
            for stream in (sys.stdout, sys.stderr):
                stream.flush()  # what was printed comes first
            fd = os.dup(how)
    except OSError as e:
        if e.errno == errno.ENXIO:
            raise UserError(f"cannot write {path}: it is a FIFO and no process is reading it") from None
        raise _named(e, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
    except OSError as e:
        raise _named(e, path) from None


def _named(e: OSError, path: Path) -> OSError:
    """The same kind of OSError, naming ``path`` (a failed ``write`` names no file of its own)."""
    return type(e)(e.errno, e.strerror or str(e), str(path))


def _first_file(folder: Path) -> Path:
    """The first component of ``folder`` that exists and is not a directory (what blocks mkdir)."""
    for p in [*reversed(folder.parents), folder]:
        if p.exists() and not p.is_dir():
            return p
    return folder


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (one we may not signal exists too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale_tmp(folder: Path) -> list[Path]:
    """Remove ``*.<pid>-<n>.tmp`` (and older ``*.<pid>.tmp``) files of dead processes from ``folder`` (once per
    folder and process).

    A process killed while :func:`write_atomic` wrote leaves its temporary file behind; a running process's
    temporary files (this one's included) are kept. Returns the files removed.
    """
    folder = Path(folder)
    key = str(folder.resolve())
    if key in _SWEPT:
        return []
    _SWEPT.add(key)
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _TMP.match(entry.name)
        if m and entry.is_file(follow_symlinks=False) and not pid_alive(int(m["pid"])):
            try:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
            except OSError:
                pass  # someone else's file or already gone: not ours to insist on
    return removed


def resolve_inside(root: Path, entry: str | os.PathLike, what: str) -> Path:
    """``root / entry`` resolved (symlinks followed), refused unless it stays inside ``root``.

    ``entry`` is a path read from a dataset file (an image file name, a ``filepath``); ``what`` names that
    file and entry for the one-line error, e.g. ``"data/flickr8k/dataset.json: image 'a.jpg'"``. Absolute
    entries, ``..`` and symlinks that leave ``root`` raise :class:`UserError`. ``root`` itself may be a
    symlink (an image folder kept on another disk); only what lies below it must stay below it.

    Folders are resolved once per process (cached), so a file costs one ``lstat``: checking the 123,287
    COCO entries takes well under a second.
    """
    if "\0" in os.fspath(entry):
        raise UserError(f"{what}: path {os.fspath(entry)!r} holds a NUL byte")
    if os.path.isabs(entry):
        raise UserError(
            f"{what}: absolute path {str(entry)!r} is not allowed (paths must stay inside {_realpath(str(root))})"
        )
    real_root = _realpath(str(root))
    folder, name = os.path.split(os.path.join(str(root), entry))
    if name in ("", ".", ".."):
        target = os.path.realpath(os.path.join(folder, name))
    else:
        target = os.path.join(_realpath(folder), name)
        if os.path.islink(target):
            target = os.path.realpath(target)
    if target != real_root and not target.startswith(real_root.rstrip(os.sep) + os.sep):
        raise UserError(f"{what}: path {str(entry)!r} leaves the dataset folder {real_root}")
    return Path(target)


@functools.lru_cache(maxsize=65536)
def _realpath(folder: str) -> str:
    return os.path.realpath(folder)


def read_json_object(path: Path, what: str = "") -> dict:
    """The JSON object in the UTF-8 file ``path``; unreadable, malformed or not an object: a one-line UserError
    naming the file (and ``what`` it should be, e.g. "a fitted model's config")."""
    what = f" ({what})" if what else ""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read {path}{what}: {e}") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path}: expected a JSON object{what}")
    return obj


def sha1_file(path: Path) -> str:
    """Hex sha1 of a file's bytes, read in 16 MiB blocks (model files and embeddings can be gigabytes)."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            h.update(block)
    return h.hexdigest()


def open_npy(path: Path):
    """A user's ``.npy`` file memory-mapped read-only, after its header is checked against the file.

    The header (magic, dtype, shape) is read and checked first (:func:`check_npy_header`): an object dtype (a
    pickle) is never loaded, and a header that claims more data than the file holds (a 4 KB file claiming
    93 GiB) is refused before any mapping. Anything unreadable is a one-line UserError naming the file; a .npz
    archive is not a .npy.
    """
    import numpy as np

    try:
        with open(path, "rb") as f:
            check_npy_header(f, os.fstat(f.fileno()).st_size, str(path))
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as e:
        raise UserError(f"cannot read {path} as a numeric .npy array: {e}") from None


def read_regular(path: Path, folder: Path, max_bytes: int, what: str) -> bytes:
    """The bytes of ``path``, refused (one-line UserError naming ``path`` and ``what`` it is) unless it is a
    regular file, after symlinks, inside ``folder``, of at most ``max_bytes`` bytes.

    Opened non-blocking and checked with ``fstat`` on the open descriptor before a byte is read: a FIFO
    (which would hang the reader), a device (``/dev/zero`` is endless), a folder or a link leaving ``folder``
    is never read."""
    real, inside = os.path.realpath(path), os.path.realpath(folder).rstrip(os.sep) + os.sep
    if not real.startswith(inside):
        raise UserError(f"{path}: {what} leaves {folder} (a symlink to {real})")
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise UserError(f"{path}: {what} is missing") from None
    except OSError as e:
        raise UserError(f"cannot read {path} ({what}): {e.strerror or e}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UserError(f"{path}: {what} is not a regular file (a FIFO, device or folder); never read")
        if st.st_size > max_bytes:
            raise UserError(f"{path}: {what} holds {st.st_size} bytes, more than the {max_bytes} it can need")
        return f.read(max_bytes + 1)[:max_bytes]


def read_npz(data: bytes, where: str, max_bytes: int | None = None) -> dict:
    """{name: array} of a ``.npz`` archive held in ``data``, every member bounded before numpy reads it (numpy
    allocates what a header claims before it reads): the uncompressed sizes the zip directory records
    (``file_size``, which zipfile never reads past) add up to at most ``max_bytes`` (compression lets a 7 MB
    archive declare 1.5 GiB), and each member's ``.npy`` header (:func:`check_npy_header`) claims no more than
    its ``file_size``. Never unpickled; a bad archive is a one-line UserError naming ``where``."""
    import io
    import zipfile

    import numpy as np

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
            total = sum(info.file_size for info in infos)
            if max_bytes is not None and total > max_bytes:
                raise UserError(
                    f"{where}: its members claim {total} bytes uncompressed, more than the "
                    f"{max_bytes} it can need (a damaged or hostile archive); not read"
                )
            for info in infos:
                with zf.open(info) as f:
                    check_npy_header(f, info.file_size, f"{where}: member {info.filename}")
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except UserError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, NotImplementedError) as e:
        raise UserError(f"{where}: not a readable .npz archive ({e})") from None


def check_npy_header(f, size: int, where: str) -> tuple[tuple, object]:
    """Read a ``.npy`` header from the start of the open binary file ``f`` of ``size`` bytes: a UserError naming
    ``where`` unless it is a plain (not object) dtype whose claimed data fits in the bytes after the header.
    Returns the (shape, dtype) it declares."""
    import math

    import numpy as np

    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        read_header = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(version)
        if read_header is None:
            raise ValueError(f".npy format version {version[0]}.{version[1]} is not read here")
        shape, _, dtype = read_header(f)
        offset = f.tell()
    except (ValueError, EOFError) as e:
        raise UserError(f"cannot read {where} as a numeric .npy array: {e}") from None
    if dtype.hasobject:
        raise UserError(
            f"{where}: a pickled (object) .npy, never loaded as a numeric .npy array; save a plain "
            "numeric array (np.save(path, np.asarray(x, dtype=np.float32)))"
        )
    need = math.prod(shape) * dtype.itemsize
    if need > size - offset:
        raise UserError(
            f"{where}: its header claims a {' x '.join(map(str, shape)) or 'scalar'} {dtype} array "
            f"({need / 2**30:.1f} GiB) but the file holds {size - offset} bytes of data "
            "(truncated, or a damaged header)"
        )
    return shape, dtype


SAFETENSORS_HEADER_MAX = 100 << 20  # safetensors' own limit on the JSON header


def safetensors_header(path: Path) -> dict:
    """The JSON header of a ``.safetensors`` file ({tensor: {dtype, shape, data_offsets}, "__metadata__": {...}}),
    read alone: 8 bytes of length, then that many bytes of JSON (at most SAFETENSORS_HEADER_MAX). The tensors are
    not read. A missing, short or damaged header is a one-line UserError naming the file."""
    import struct

    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > SAFETENSORS_HEADER_MAX:
                raise ValueError(f"a header of {n} bytes")
            header = json.loads(f.read(n))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
    except (OSError, ValueError, struct.error) as e:
        raise UserError(f"{path}: cannot read as safetensors ({e})") from None
    return header
