"""An on-disk store of training slices: a cohort read, preprocessed and normalised once,
then read back a few rows at a time, so training memory does not grow with the cohort.

A store is a folder:

* ``slices.f32``: [N, S, S, k] float32 in C order, the rows of :func:`slice_volume` subject
  after subject (what :func:`~jaxuad.data.slices.stack_images` would hold in memory);
* ``store.json``: the shape, the key of what it was built from (:func:`store_key`) and
  each subject's first row and row count.

It appears complete or not at all (built in a hidden sibling, then renamed). Rows are read
with ``os.pread``, not a memory map, so what a read costs in memory is the rows it returns.

Example:
  >>> import tempfile
  >>> rows = np.arange(3 * 4 * 4, dtype=np.float32).reshape(3, 4, 4, 1)
  >>> store = build_store(Path(tempfile.mkdtemp()) / "slices", [("a", rows)], key="k")
  >>> store.shape, bool((store[[2, 0]] == rows[[2, 0]]).all())
  ((3, 4, 4, 1), True)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from jaxuad.core.io import write_json
from jaxuad.data.dataset import DataError, discover

STORE_VERSION = 1
ROWS_FILE, INDEX_FILE = "slices.f32", "store.json"


def store_key(data_config: dict, path, modality: str) -> str:
    """What a store's rows depend on: the data settings and every input file's name, size
    and modification time (``path`` None: the phantom, which the settings fix). A store
    whose key differs is rebuilt, never read."""
    files = []
    for s in discover(path, modality) if path is not None else []:
        for f in (s.image, s.brainmask):
            st = Path(f).stat()
            files.append([str(Path(f).resolve()), st.st_size, st.st_mtime_ns])
    text = json.dumps({"version": STORE_VERSION, "data": data_config, "files": files},
                      sort_keys=True)  # fmt: skip
    return hashlib.sha256(text.encode()).hexdigest()


class SliceStore:
    """Read access to a built store: ``len``, ``shape`` and ``store[rows]`` ([len(rows), S,
    S, k] float32, in the order of ``rows``), like the in-memory array it replaces."""

    def __init__(self, folder):
        self.folder, self._fd = Path(folder), None
        index = self.folder / INDEX_FILE
        try:
            meta = json.loads(index.read_text(encoding="utf-8"))
            self.shape = tuple(int(x) for x in meta["shape"])
            self.key = str(meta["key"])
            self.subjects = [tuple(s) for s in meta["subjects"]]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise DataError(f"{index}: not a slice store ({e})") from None
        self.row_bytes = int(np.prod(self.shape[1:])) * 4
        rows = self.folder / ROWS_FILE
        size = rows.stat().st_size if rows.is_file() else -1
        if size != self.shape[0] * self.row_bytes:
            raise DataError(f"{rows}: {size} bytes, expected {self.shape[0] * self.row_bytes}")
        self._fd = os.open(rows, os.O_RDONLY)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows) -> np.ndarray:
        rows = np.asarray(rows, np.int64).reshape(-1)
        out = np.empty((len(rows), *self.shape[1:]), np.float32)
        flat = out.reshape(len(rows), -1)
        order = np.argsort(rows, kind="stable")  # ascending offsets: sequential-ish reads
        for i in order:
            data = os.pread(self._fd, self.row_bytes, int(rows[i]) * self.row_bytes)
            flat[i] = np.frombuffer(data, np.float32)
        return out

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self):
        self.close()


def build_store(folder, slices: Iterable[tuple[str, np.ndarray]], key: str) -> SliceStore:
    """Writes ``(subject id, [n, S, S, k] slices)`` pairs into a new store at ``folder``
    (replacing one there) and opens it. Memory holds one subject's slices at a time."""
    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    n, row_shape, subjects = 0, None, []
    with open(tmp / ROWS_FILE, "wb") as f:
        for sid, images in slices:
            images = np.ascontiguousarray(images, np.float32)
            if row_shape is None:
                row_shape = images.shape[1:]
            elif images.shape[1:] != row_shape:
                raise DataError(f"sub-{sid}: slices {images.shape[1:]}, the store's {row_shape}")
            f.write(images.tobytes())
            subjects.append([sid, n, len(images)])
            n += len(images)
        f.flush()
        os.fsync(f.fileno())
    if row_shape is None:
        shutil.rmtree(tmp)
        raise DataError("no training slices to store")
    write_json({"version": STORE_VERSION, "shape": [n, *row_shape], "key": key,
                "subjects": subjects}, tmp / INDEX_FILE)  # fmt: skip
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return SliceStore(folder)


def open_store(folder, key: str) -> SliceStore | None:
    """The store at ``folder`` if it was built from ``key``; None if absent or stale."""
    folder = Path(folder)
    if not (folder / INDEX_FILE).is_file():
        return None
    try:
        store = SliceStore(folder)
    except DataError:
        return None
    if store.key != key:
        store.close()
        return None
    return store
