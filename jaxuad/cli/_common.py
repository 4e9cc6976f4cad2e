"""Shared command-line plumbing: config options and one-line errors with non-zero exits."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from jaxuad.config import ConfigError

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's layout; each option's help states its own default."""


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=HelpFormatter
    )


def add_modality(p: argparse.ArgumentParser, help: str) -> None:
    from jaxuad.data import MODALITIES

    p.add_argument("--modality", default=None, choices=MODALITIES, help=help)


def add_overrides(p: argparse.ArgumentParser, metavar: str, help: str) -> None:
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar=metavar, help=help
    )


def add_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def add_devices(p: argparse.ArgumentParser, what: str) -> None:
    """--devices and the multi-process options (jaxuad.distributed)."""
    g = p.add_argument_group(
        "devices and hosts",
        "jaxuad is data-parallel over a jax.sharding.Mesh; see README, 'Several devices and "
        "hosts'. On a cluster, start the same command once per process.",
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


def run(main: Callable[[], int | None]) -> None:
    """Runs ``main`` with jaxuad's runtime defaults (:func:`jaxuad.runtime.configure`); bad
    input becomes ``error: <file>: <problem>`` and exit code 2."""
    from jaxuad.data import DataError
    from jaxuad.runtime import configure
    from jaxuad.train import TrainingDiverged

    try:
        configure()
        sys.exit(main() or 0)
    except (DataError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(EXIT_DIVERGED)
    except KeyboardInterrupt:
        sys.exit(130)
