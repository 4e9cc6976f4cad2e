"""The docs match the code: generated references are current, and every option a document
shows for a ``jaxuad-*`` command exists."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMAND_LINE = r"jaxuad-(train|restore|evaluate|phantom|sample|compare)\b([^\n`]*)"
GENERATE = runpy.run_path(str(ROOT / "docs" / "generate.py"))


@pytest.fixture(scope="module")
def generated() -> dict[Path, str]:
    return GENERATE["generated"]()


def test_generated_references_are_current(generated):
    for path, text in generated.items():
        assert path.read_text() == text, f"{path.name} is out of date: run bin/gen-docs"


def _documented_options() -> list[tuple[str, str, str]]:
    """(document, command, option) for every ``--option`` after ``jaxuad-<command>`` on one
    command line (continuation lines joined) of the README and docs/ (generated ones aside)."""
    found = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        if doc.name in ("cli.md", "configs.md"):
            continue
        text = doc.read_text().replace("\\\n", " ")
        for m in re.finditer(
            r"jaxuad-(train|restore|evaluate|phantom|sample|compare)\b([^\n`]*)", text
        ):
            for option in re.findall(r"(?<![\w-])--[a-z][a-z-]*", m.group(2)):
                found.append((doc.name, m.group(1), option))
    return found


def test_every_documented_option_exists(generated):
    cli = generated[ROOT / "docs" / "cli.md"]
    helps = dict(re.findall(r"## jaxuad-(\w+)\n\n```\n(.*?)```", cli, re.S))
    documented = _documented_options()
    assert len(documented) > 20  # the scan finds the README's command lines
    missing = sorted({(d, c, o) for d, c, o in documented if o not in helps[c]})
    assert not missing, missing


def test_docstring_examples_run():
    """Every ``>>>`` example in jaxuad's docstrings runs and prints what it shows."""
    import doctest
    import importlib
    import pkgutil

    import jaxuad

    attempted = 0
    for info in pkgutil.walk_packages(jaxuad.__path__, "jaxuad."):
        module = importlib.import_module(info.name)
        flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
        result = doctest.testmod(module, optionflags=flags, report=False)
        assert result.failed == 0, f"{info.name}: {result.failed} failing examples"
        attempted += result.attempted
    assert attempted >= 15
