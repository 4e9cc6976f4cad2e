"""Steps of a reproduction: one library call each (a :class:`~jaxuad.reproduce.commands.Command`,
recorded as its jaxuad command line), run in this process."""

from __future__ import annotations

import csv
import datetime
import io
import json
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from jaxuad.core.errors import JaxuadError
from jaxuad.reproduce.commands import Command


@dataclass(frozen=True)
class Step:
    """One command of a reproduction, with what marks it done and what it belongs to."""

    command: Command
    done: Path  # written after the step succeeds; its presence skips the step
    resume: Path | None = None  # when this holds files (a killed training run), resume it
    # What a step belongs to, general to specific: (run,) for training, (run, row) for a
    # row's steps. A failure fails the most specific tag, so a diverged training run skips
    # all its rows and a failed restoration only its own row; later steps carrying a failed
    # tag are skipped and the row is reported as failed. Untagged steps (the phantom) abort.
    tags: tuple[str, ...] = ()


class ReproduceError(RuntimeError):
    """A step failed; the message names the step and the problem."""


def run_command(command: Command, resume: bool = False) -> None:
    """Runs one command in this process; raises :class:`ReproduceError` naming its command
    line."""
    shown = shlex.join(command.argv() + (["--resume"] if resume else []))
    try:
        command(resume)
    except JaxuadError as e:  # bad data or config: its own one-line message
        raise ReproduceError(f"{shown}: {e}") from None
    except Exception as e:  # a training divergence, an I/O error: name the step
        raise ReproduceError(f"{shown}: {type(e).__name__}: {e}") from e


CODE_PATHS = ("jaxuad", "configs", "bin", "pyproject.toml")  # what decides a result


def git_commit(root: Path | None = None) -> str:
    """Short hash of the checkout at ``root`` (default: the current folder), with ``-dirty``
    when the code (:data:`CODE_PATHS`; not the README or tests) differs from it; "unknown"
    outside a git checkout."""
    root = root or Path.cwd()
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def default_results(date: datetime.date | None = None) -> Path:
    """``results/<date>-<commit>``, where a run's tables and figures go by default."""
    date = date or datetime.date.today()
    return Path("results") / f"{date.isoformat()}-{git_commit()}"


def device_name() -> str:
    import jax

    d = jax.devices()[0]
    return f"{d.platform} ({d.device_kind})"


def csv_text(header: list[str], rows: list[list]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows([[str(c) for c in r] for r in rows])
    return buf.getvalue()


def load_json(path: Path, default):
    return json.loads(path.read_text()) if path.is_file() else default
