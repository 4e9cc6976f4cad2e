"""Installed runs: detectors a user can name instead of giving a folder.

Runs live in one folder, ``$JAXUAD_MODELS`` or ``~/.cache/jaxuad/models``, one sub-folder
per name (``bin/build-pretrained --install`` puts the pretrained atlas there as
``atlas-ixi-t1``). ``jaxuad-detect --workdir NAME`` and ``jaxuad-models`` read it; nothing
is downloaded and nothing is read at import.

    >>> from pathlib import Path
    >>> resolve_run(".") == Path(".")  # a folder is a run as it is
    True
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import NamedTuple

from jaxuad.core.errors import ConfigError
from jaxuad.core.io import OutputFolder

MODELS_ENV = "JAXUAD_MODELS"
CARD = "MODEL_CARD.md"


class Installed(NamedTuple):
    """An installed run: its name, folder and the first line of its model card."""

    name: str
    path: Path
    summary: str


def models_dir() -> Path:
    """``$JAXUAD_MODELS``, else ``~/.cache/jaxuad/models``."""
    return Path(os.environ.get(MODELS_ENV) or Path.home() / ".cache" / "jaxuad" / "models")


def installed() -> list[Installed]:
    """The installed runs, by name."""
    root = models_dir()
    found = []
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        if d.is_dir() and (d / "config.json").is_file():
            card = d / CARD
            lines = card.read_text(encoding="utf-8").splitlines() if card.is_file() else []
            found.append(Installed(d.name, d, lines[0].lstrip("# ") if lines else ""))
    return found


def resolve_run(run) -> Path:
    """``run`` as a folder: itself when it is one, else the installed run of that name.

    Raises:
      ConfigError: neither, naming the installed runs.
    """
    path = Path(run)
    if path.is_dir():
        return path
    if path.name == str(run) and (models_dir() / path.name / "config.json").is_file():
        return models_dir() / path.name
    names = ", ".join(m.name for m in installed()) or "none"
    raise ConfigError(
        f"{run}: no such run folder, nor an installed run (installed in {models_dir()}: {names})"
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


__all__ = ["MODELS_ENV", "Installed", "install", "installed", "models_dir", "resolve_run"]
