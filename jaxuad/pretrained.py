"""Installed runs: detectors a user can name instead of giving a folder.

Runs are found in two places, nothing downloaded and nothing read at import:

* the models folder, ``$JAXUAD_MODELS`` or ``~/.cache/jaxuad/models``, one sub-folder per
  name (``jaxuad-models --install``; ``bin/build-pretrained --install`` puts the pretrained
  atlas there as ``atlas-ixi-t1``);
* companion packages: a wheel built by :func:`package_run` (``bin/build-pretrained
  --wheel``) holds a run as package data and names it in the ``jaxuad.models`` entry-point
  group, so ``pip install jaxuad_models_atlas_ixi_t1-*.whl`` makes it known by name.

``jaxuad-detect --workdir NAME`` and ``jaxuad-models`` read both (the folder first).

    >>> from pathlib import Path
    >>> resolve_run(".") == Path(".")  # a folder is a run as it is
    True
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import zipfile
from importlib import metadata, resources
from pathlib import Path
from typing import NamedTuple

from jaxuad.core.errors import ConfigError
from jaxuad.core.io import OutputFolder, atomic_path

MODELS_ENV = "JAXUAD_MODELS"
CARD = "MODEL_CARD.md"
ENTRY_POINTS = "jaxuad.models"  # name = the package holding the run folder of that name


class Installed(NamedTuple):
    """An installed run: its name, folder and the first line of its model card."""

    name: str
    path: Path
    summary: str


def models_dir() -> Path:
    """``$JAXUAD_MODELS``, else ``~/.cache/jaxuad/models``."""
    return Path(os.environ.get(MODELS_ENV) or Path.home() / ".cache" / "jaxuad" / "models")


def _summary(folder: Path) -> str:
    card = folder / CARD
    lines = card.read_text(encoding="utf-8").splitlines() if card.is_file() else []
    return lines[0].lstrip("# ") if lines else ""


def _packaged() -> dict[str, Path]:
    """Runs shipped by installed companion packages, by name."""
    found = {}
    for ep in metadata.entry_points(group=ENTRY_POINTS):
        folder = Path(str(resources.files(ep.value) / ep.name))
        if (folder / "config.json").is_file():
            found[ep.name] = folder
    return found


def installed() -> list[Installed]:
    """The installed runs, by name: the models folder's, then the packaged ones it lacks."""
    root = models_dir()
    found = {}
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        if d.is_dir() and (d / "config.json").is_file():
            found[d.name] = Installed(d.name, d, _summary(d))
    for name, folder in sorted(_packaged().items()):
        found.setdefault(name, Installed(name, folder, _summary(folder)))
    return list(found.values())


def resolve_run(run) -> Path:
    """``run`` as a folder: itself when it is one, else the installed run of that name.

    Raises:
      ConfigError: neither, naming the installed runs.
    """
    path = Path(run)
    if path.is_dir():
        return path
    if path.name == str(run):
        if (models_dir() / path.name / "config.json").is_file():
            return models_dir() / path.name
        if path.name in (packaged := _packaged()):
            return packaged[path.name]
    names = ", ".join(m.name for m in installed()) or "none"
    raise ConfigError(
        f"{run}: no such run folder, nor an installed run (in {models_dir()} or a companion "
        f"package: {names})"
    )


def install(run, name: str, overwrite: bool = False) -> Path:
    """Copies the run folder ``run`` into the models folder as ``name``; returns its path.
    The copy appears whole or not at all; an installed run of that name is replaced only
    with ``overwrite``."""
    run = Path(run)
    if not (run / "config.json").is_file():
        raise ConfigError(f"{run}: not a run folder (no config.json)")
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"{name!r}: a model name is a plain folder name")
    dst = models_dir() / name

    def owned(folder):
        return {p.name for p in Path(folder).iterdir()}  # an installed run is all ours

    with OutputFolder(dst, overwrite=overwrite, owned=owned) as folder:
        for f in run.iterdir():
            if f.name.startswith("."):
                continue
            if f.is_dir():
                shutil.copytree(f, folder.path / f.name)
            else:
                shutil.copy2(f, folder.path / f.name)
        folder.commit()
    return dst


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def package_run(run, name: str, out, version: str = "1.0", licence: str = "") -> Path:
    """Writes a companion wheel holding the run folder ``run`` as ``name`` (its model card
    as the package's description) into the folder ``out``; returns the wheel's path.

    ``pip install`` of that wheel makes the run known to :func:`installed` and
    :func:`resolve_run` (``jaxuad-detect --workdir NAME``), offline. The wheel is written
    directly (a zip with the package, its ``.dist-info`` and a ``RECORD`` of hashes, as the
    wheel format specifies), so no build tool is needed.
    """
    run = Path(run)
    if not (run / "config.json").is_file():
        raise ConfigError(f"{run}: not a run folder (no config.json)")
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
        raise ConfigError(f"{name!r}: a packaged model's name is lower-case letters, digits, -")
    module = "jaxuad_models_" + name.replace("-", "_")
    info = f"{module}-{version}.dist-info"
    card = run / CARD
    description = card.read_text(encoding="utf-8") if card.is_file() else name
    files = {f"{module}/__init__.py":
             f'"""The jaxuad run {name!r} as package data (see its MODEL_CARD.md)."""\n'.encode()}
    for f in sorted(run.rglob("*")):
        rel = f.relative_to(run)
        if f.is_file() and not any(part.startswith(".") for part in rel.parts):
            files[f"{module}/{name}/{rel.as_posix()}"] = f.read_bytes()
    files[f"{info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: {version}\n"
        f"Summary: jaxuad run {name}: {_summary(run) or name}\n"
        f"License: {licence or 'see MODEL_CARD.md'}\n"
        f"Description-Content-Type: text/markdown\n\n{description}"
    ).encode()
    files[f"{info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: jaxuad.pretrained\n"
                              b"Root-Is-Purelib: true\nTag: py3-none-any\n")  # fmt: skip
    files[f"{info}/entry_points.txt"] = f"[{ENTRY_POINTS}]\n{name} = {module}\n".encode()
    files[f"{info}/top_level.txt"] = f"{module}\n".encode()
    record = [f"{path},{_record_hash(data)},{len(data)}" for path, data in files.items()]
    files[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    wheel = out / f"{module}-{version}-py3-none-any.whl"
    with atomic_path(wheel) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for path, data in files.items():
            z.writestr(path, data)
    return wheel


__all__ = [
    "ENTRY_POINTS",
    "MODELS_ENV",
    "Installed",
    "install",
    "installed",
    "models_dir",
    "package_run",
    "resolve_run",
]
