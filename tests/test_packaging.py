"""jaxuad as an installed package: what the wheel holds, and what importing it leaves alone.

The wheel itself is built, installed into a fresh venv and run from another folder by
``bin/test`` (README, "Development"), before pytest starts.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

from jaxuad.config import available_models, load_config

ROOT = Path(__file__).resolve().parents[1]


def test_pyproject_lists_every_package():
    """setuptools installs only the packages pyproject names: a new jaxuad/ subpackage
    missing there would be left out of the wheel, and work only in the checkout."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "jaxuad").rglob("__init__.py")
    }
    found |= {  # configs/ is installed as jaxuad.configs
        ".".join(("jaxuad", *p.parent.relative_to(ROOT).parts))
        for p in (ROOT / "configs").rglob("__init__.py")
    }
    assert set(tool["packages"]) == found
    assert tool["package-dir"] == {"jaxuad.configs": "configs"}


def test_every_shipped_config_is_a_model():
    """``configs/*.py`` are installed as ``jaxuad.configs``: each is one model's config."""
    shipped = sorted(p.stem for p in (ROOT / "configs").glob("*.py") if p.stem != "__init__")
    assert available_models() == shipped
    assert all(load_config(name).model.name == name for name in shipped)


# Imports every jaxuad module, draws a figure with jaxuad.report, and prints the process
# state jaxuad must not touch, before and after.
_IMPORT_ALL = r"""
import ctypes, importlib, json, os, pkgutil, sys
import jax, matplotlib

matplotlib.use("svg")  # the caller's choice, e.g. a notebook's inline backend

def state():
    return {
        "jax_config": {k: repr(v) for k, v in jax.config.values.items()},
        "XLA_FLAGS": os.environ.get("XLA_FLAGS"),
        "MALLOC": {k: v for k, v in os.environ.items() if k.startswith(("MALLOC_", "GLIBC_"))},
        "backend": matplotlib.get_backend(),
        "pyplot": "matplotlib.pyplot" in sys.modules,
    }

before = state()
import jaxuad
modules = [m.name for m in pkgutil.walk_packages(jaxuad.__path__, "jaxuad.")]
for name in modules:
    importlib.import_module(name)
from jaxuad.report import figures as report
report._subplots(1, 1)
print(json.dumps({"before": before, "after": state(), "modules": modules}))
"""


def test_importing_jaxuad_changes_no_global_state():
    """Importing every module of jaxuad (and drawing a report figure) leaves JAX's config
    (PRNG implementation, compilation cache, ...), ``XLA_FLAGS``, the allocator options and
    the matplotlib backend as the caller set them; only ``jaxuad.runtime.configure()``
    changes them (tests/test_runtime.py checks the allocator itself)."""
    env = {k: v for k, v in __import__("os").environ.items() if k != "XLA_FLAGS"}
    r = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL], capture_output=True, text=True, env=env, cwd="/"
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert {"jaxuad.evaluate", "jaxuad.report", "jaxuad.cli.train"} <= set(out["modules"])
    before, after = out["before"], out["after"]
    assert after["jax_config"]["jax_default_prng_impl"] == repr("threefry2x32")
    assert after == before


def test_top_level_api_loads_lazily_and_names_what_it_says():
    """``jaxuad.load_run`` and friends come from the modules that define them, and only
    on first use: ``import jaxuad`` alone does not start JAX."""
    code = (
        "import sys, jaxuad; assert 'jax' not in sys.modules; "
        "import jaxuad.train, jaxuad.restore, jaxuad.data; "
        "assert jaxuad.load_run is jaxuad.train.load_run; assert jaxuad.lg is jaxuad.restore.lg; "
        "assert jaxuad.phantom is jaxuad.data.phantom; "
        "assert all(getattr(jaxuad, n) is not None for n in jaxuad.__all__); print('ok')"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


def test_readme_python_example_runs(trained_run, phantom_dir):
    """The README's "From Python" example, on the session's smoke run and phantom."""
    import re

    text = (ROOT / "README.md").read_text()
    section = text[text.index("## From Python") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    code = code.replace('"runs/svae"', repr(str(trained_run))).replace('"T1w"', '"FLAIR"')
    code = code.replace('"healthy/"', repr(str(phantom_dir / "healthy")))
    code = code.replace('"patients/"', repr(str(phantom_dir / "lesion")))
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    vol = scope["patients"][0]
    residual = scope["residual"](vol)
    assert residual.shape == vol.image.shape and residual.max() > 0
    assert not residual[~vol.brainmask].any()
    result = scope["result"]
    assert [r.subject for r in result.subjects] == ["0", "1"] and result.n_subjects == 2
    assert 0 <= result.auroc <= 1 and result.at_threshold["fpr1"].lesions > 0


# The pipeline's stages, lowest first: a module may import its own stage and those before it.
STAGES = (
    "core config runtime pretrained distributed data preprocess similarity models train "
    "sampling restore postprocess metrics evaluate report detect cli reproduce"
).split()


def _upward_imports(root: Path = ROOT) -> set[tuple[str, str, str]]:
    import ast

    found = set()
    for path in (root / "jaxuad").rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        if len(parts) < 2 or parts[1] not in STAGES:
            continue
        own = STAGES.index(parts[1])
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "jaxuad":
                names = [f"jaxuad.{a.name}" for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                target = name.split(".")[1] if name.startswith("jaxuad.") else None
                if target in STAGES and STAGES.index(target) > own:
                    found.add((parts[1], target, f"{path.relative_to(root)}:{node.lineno}"))
    return found


def test_stages_import_only_earlier_ones():
    """data -> models -> train -> restore -> postprocess -> metrics -> evaluate -> report ->
    cli, with reproduce on top: each stage imports only those before it."""
    assert _upward_imports() == set()


def test_the_layering_check_finds_upward_imports(tmp_path):
    for name, text in {
        "evaluate/score.py": "from jaxuad.report import tables\n",
        "metrics.py": "import jaxuad.cli._common\nfrom jaxuad import data\n",
        "data/io.py": "def f():\n    from jaxuad import restore\n",
    }.items():
        (tmp_path / "jaxuad" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "jaxuad" / name).write_text(text)
    assert {(a, b) for a, b, _ in _upward_imports(tmp_path)} == {
        ("evaluate", "report"),
        ("metrics", "cli"),
        ("data", "restore"),
    }
