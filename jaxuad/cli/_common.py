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


def run(main: Callable[[], int | None]) -> None:
    """Runs ``main``; bad input becomes ``error: <file>: <problem>`` and exit code 2."""
    from jaxuad.data import DataError
    from jaxuad.train import TrainingDiverged

    try:
        sys.exit(main() or 0)
    except (DataError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(EXIT_DIVERGED)
    except KeyboardInterrupt:
        sys.exit(130)
