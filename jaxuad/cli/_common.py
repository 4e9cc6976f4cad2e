"""Shared command-line plumbing: config options and one-line errors with non-zero exits."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable

from jaxuad.config import ConfigError

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's layout; each option's help states its own default."""


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description, formatter_class=HelpFormatter)
    p.add_argument(
        "--debug",
        action="store_true",
        help="on an error, show the full Python traceback instead of one line",
    )
    return p


def add_modality(p: argparse.ArgumentParser, help: str) -> None:
    from jaxuad.data import MODALITIES

    p.add_argument("--modality", default=None, choices=MODALITIES, help=help)


def add_overrides(p: argparse.ArgumentParser, metavar: str, help: str) -> None:
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar=metavar, help=help
    )


def flag_overrides(args: argparse.Namespace, flags: dict[str, str]) -> list[str]:
    """``args.overrides`` (``--set`` assignments) plus one ``section.key=value`` for each
    option in ``flags`` (option name -> config key) that was given: every flag is sugar
    for one config key, resolved here. A flag and a ``--set`` of its key that disagree
    are an error."""
    from jaxuad.config import parse_overrides

    given = parse_overrides(args.overrides)
    extra = []
    for option, key in flags.items():
        value = getattr(args, option)
        if value is None:
            continue
        section, name = key.split(".")
        item = f"{key}={value}"
        if (
            name in given.get(section, {})
            and given[section][name] != parse_overrides([item])[section][name]
        ):
            raise ConfigError(
                f"--{option.replace('_', '-')} {value} and --set {key}="
                f"{given[section][name]} disagree; give one"
            )
        extra.append(item)
    return [*args.overrides, *extra]


def add_space(p: argparse.ArgumentParser, template: str) -> None:
    """--space: where volumes go, relative to scans from jaxuad-preprocess."""
    p.add_argument(
        "--space",
        choices=("template", "native", "both"),
        default="template",
        help=f"template: {template} (default); native: back on each scan as acquired "
        "(OUT/native/, for --data from jaxuad-preprocess); both",
    )


def add_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def add_devices(p: argparse.ArgumentParser, what: str) -> None:
    """--devices and the multi-process options (jaxuad.distributed)."""
    g = p.add_argument_group(
        "devices and hosts",
        "jaxuad is data-parallel over a jax.sharding.Mesh; see docs/distributed.md. On a "
        "cluster, start the same command once per process.",
    )
    g.add_argument(
        "--devices",
        type=int,
        default=None,
        metavar="N",
        help=f"{what} over the first N devices (default: every visible device, of every process)",
    )
    g.add_argument(
        "--coordinator",
        default=None,
        metavar="HOST:PORT",
        help="multi-process run: address of process 0's coordinator (default: "
        "$JAX_COORDINATOR_ADDRESS; unset = a single process)",
    )
    g.add_argument(
        "--num-processes",
        type=int,
        default=None,
        metavar="N",
        help="multi-process run: number of processes (default: $JAX_NUM_PROCESSES)",
    )
    g.add_argument(
        "--process-id",
        type=int,
        default=None,
        metavar="I",
        help="multi-process run: this process's index, 0 to N-1; process 0 writes all "
        "outputs (default: $JAX_PROCESS_ID)",
    )
    g.add_argument(
        "--distributed",
        action="store_true",
        help="multi-process run with the cluster detected by JAX (SLURM, Open MPI, TPU "
        "pods, Kubernetes) instead of the three options above",
    )


def start_processes(args: argparse.Namespace) -> None:
    """Joins the multi-process run the arguments of :func:`add_devices` describe, if any."""
    from jaxuad.distributed import initialize

    initialize(args.coordinator, args.num_processes, args.process_id, auto=args.distributed)


def _quiet_from_here() -> None:
    """Silences what libraries print while the process winds down after a reported error:
    orbax's and tensorstore's readers of a damaged checkpoint leave coroutines and I/O
    callbacks whose failures ("Event loop is closed") Python and C++ would print as
    tracebacks at exit, after the one line that already said what went wrong."""
    sys.unraisablehook = lambda unraisable: None
    threading.excepthook = lambda args: None
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):  # no real stderr (captured, closed)
        pass


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # SIGTERM (a scheduler's kill) ends like Ctrl-C: cleanly


def run(main: Callable[[], int | None]) -> None:
    """Runs ``main`` with jaxuad's runtime defaults (:func:`jaxuad.runtime.configure`).

    Bad input (data, config, run and output folders, unreadable files, a full disk)
    becomes one line ``error: <file or setting>: <problem>`` and exit code 2; a diverged
    training exit code 3; SIGTERM is handled like Ctrl-C (training saves a checkpoint,
    partial outputs are removed), exit code 130; anything else, a bug, one line and exit
    code 1. ``--debug`` shows the traceback instead.
    """
    from jaxuad.data import DataError
    from jaxuad.runtime import configure
    from jaxuad.train import TrainingDiverged

    debug = "--debug" in sys.argv[1:]
    try:
        signal.signal(signal.SIGTERM, _interrupt)
        configure()
        sys.exit(main() or 0)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:
        if debug:
            raise
        if isinstance(e, DataError | ConfigError):
            message, code = str(e), EXIT_BAD_INPUT
        elif isinstance(e, TrainingDiverged):
            message, code = str(e), EXIT_DIVERGED
        elif isinstance(e, OSError):  # a folder that cannot be written, a full disk, ...
            where = f"{e.filename}: " if e.filename else ""
            message, code = f"{where}{e.strerror or e}", EXIT_BAD_INPUT
        else:
            message = f"internal error: {type(e).__name__}: {e} (rerun with --debug for details)"
            code = 1
        print(f"error: {message}", file=sys.stderr, flush=True)
        _quiet_from_here()
        sys.exit(code)
