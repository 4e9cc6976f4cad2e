"""Files and folders that appear complete or not at all, and outputs kept apart from inputs.

* :func:`atomic_path`: one file, written beside its final name and renamed into place;
* :func:`write_text`, :func:`write_json` (strict JSON), :func:`read_json`;
* :func:`check_apart`: an output folder is never an input folder, inside one, or holding one;
* :class:`OutputFolder`: a whole output folder built in a hidden sibling, locked against a
  second writer, and swapped in only when complete, so a failure, a full disk or a kill
  leaves the earlier result (or nothing) where the output goes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from jaxuad.core.errors import ConfigError, DataError


def umask() -> int:
    """The process's umask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yields a temporary path beside ``path`` to write to; it becomes ``path`` only when
    the block completes, and is removed if it fails, so no partial file is ever left.

    The file gets the permissions a plain ``open`` would give it (0666 less the umask), not
    the 0600 of a temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix="".join(path.suffixes))
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(text: str, path: str | Path) -> None:
    """Writes ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def write_json(obj, path: str | Path) -> None:
    """Writes ``obj`` as indented, strict JSON (NaN and infinity are refused: they are not
    JSON, and other tools cannot read them), atomically."""
    write_text(json.dumps(obj, indent=2, allow_nan=False) + "\n", path)


def read_json(path: str | Path, what: str = "JSON file"):
    """Reads a JSON file that jaxuad wrote, or raises :class:`DataError` naming it."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: {what} not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: cannot read {what}: {e}") from e


def _within(a: Path, b: Path) -> bool:
    return a == b or b in a.parents


def check_apart(
    out: str | Path, folders: Iterable[str | Path], files: Iterable[str | Path] = (),
    flag: str = "--out",
) -> None:  # fmt: skip
    """Refuses an output folder that is an input folder, lies inside one or holds one, or
    that holds an input file (a manifest).

    Writing there could replace or delete the inputs (a brain mask copied over the user's
    own, a cleanup that takes an input for a stale output), so it is never done.

    Args:
      out: the output folder (need not exist).
      folders: folders holding inputs (a scan folder, the folder of each scan a manifest
        lists).
      files: input files that may share a folder with outputs but must not be inside one
        (a CSV manifest).
      flag: the option that named ``out``, for the message.

    Raises:
      ConfigError: naming ``out`` and the input it collides with.
    """
    o = Path(out).resolve()
    for item in folders:
        folder = Path(item).resolve()
        if _within(o, folder) or _within(folder, o):
            raise ConfigError(
                f"{out}: {flag} must be a folder apart from the inputs, but it "
                + ("is" if o == folder else "lies inside" if _within(o, folder) else "holds")
                + f" the input folder {folder}; choose another {flag}"
            )
    for item in files:
        path = Path(item).resolve()
        if _within(path.parent, o):
            raise ConfigError(f"{out}: {flag} holds the input file {path}; choose another {flag}")


class OutputFolder:
    """An output folder written as one transaction.

    Files are written into a hidden sibling (``.<name>.partial-<pid>``); :meth:`commit`
    moves the earlier folder aside, renames the new one into place and only then deletes
    the earlier one, so ``out`` holds the complete earlier result or the complete new one,
    never a mix and never nothing after a failure. A lock (``.<name>.jaxuad-lock`` beside it) makes
    a second writer of the same folder fail at once, and leftovers of a killed writer are
    removed by the next one.

    ``out`` must be new or empty; with ``overwrite``, it may hold an earlier result whose
    files are exactly ``owned(out)`` (the files its manifest lists): a folder with anything
    else in it (your own files) is refused, never deleted.

    Example::

      with OutputFolder(out, overwrite=True, owned=listed) as folder:
          write_json(summary, folder.path / "restore.json")
          folder.commit()
    """

    def __init__(self, out: str | Path, *, overwrite: bool = False, owned=None):
        self.out = Path(out)
        self.overwrite = overwrite
        self.owned = owned or (lambda folder: set())
        self.path: Path | None = None  # where to write, inside the block
        self._lock = None

    def check(self) -> None:
        """Raises :class:`ConfigError` unless ``out`` may be written (see the class)."""
        out = self.out
        if out.exists() and not out.is_dir():
            raise ConfigError(f"{out}: exists and is not a folder (--out)")
        present = {p.name for p in out.iterdir()} if out.is_dir() else set()
        if not present:
            return
        if not self.overwrite:
            raise ConfigError(
                f"{out}: already holds {len(present)} files; choose a new --out, or pass "
                "--overwrite to replace the result there"
            )
        foreign = sorted(present - self.owned(out))
        if foreign:
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise ConfigError(
                f"{out}: holds files an earlier jaxuad result does not list ({shown}"
                + "); --overwrite replaces only a jaxuad result: choose another --out"
            )

    def __enter__(self) -> OutputFolder:
        out = self.out
        parent = out.absolute().parent
        parent.mkdir(parents=True, exist_ok=True)
        self._lock = _lock(parent / f".{out.name}.jaxuad-lock", out)
        # A writer killed inside commit() left the earlier result aside: put it back.
        for old in sorted(parent.glob(f".{out.name}.old-*")):
            if not out.exists():
                os.replace(old, out)
            else:
                shutil.rmtree(old, ignore_errors=True)
        for stale in parent.glob(f".{out.name}.partial-*"):  # a killed writer's
            shutil.rmtree(stale, ignore_errors=True)
        try:
            self.check()
            self.path = parent / f".{out.name}.partial-{os.getpid()}"
            self.path.mkdir()
            os.chmod(self.path, 0o777 & ~umask())
        except BaseException:
            self._release()
            raise
        return self

    def commit(self) -> None:
        """Puts the finished folder in place of ``out`` (the earlier result is removed)."""
        out, parent = self.out, self.out.absolute().parent
        old = None
        if out.is_dir():
            self.check()  # still only what we may replace
            old = parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
        os.replace(self.path, out)
        self.path = None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def __exit__(self, *exc) -> None:
        if self.path is not None:  # not committed: drop what was written
            shutil.rmtree(self.path, ignore_errors=True)
            self.path = None
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def _lock(path: Path, out: Path):
    """An open file holding an exclusive ``flock`` on ``path``; a second holder fails."""
    f = path.open("a")
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        return f
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise ConfigError(
            f"{out}: another jaxuad command is writing this folder; wait for it or choose "
            "another output folder"
        ) from None
    return f
