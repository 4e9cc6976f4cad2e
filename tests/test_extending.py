"""A model and a method are one entry each (docs/extending.md), and the registries are the
only place that names them."""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxuad.cli import evaluate as evaluate_cli
from jaxuad.cli import restore as restore_cli
from jaxuad.cli import train as train_cli
from jaxuad.models import MODELS, ModelSpec, register_model
from jaxuad.models.autoencoders import AEOutput
from jaxuad.models.layers import conv
from jaxuad.restore import METHODS, MethodSpec, Restoration, register_method
from jaxuad.train import losses
from jaxuad.train.schemes import SCHEMES, Phase, Scheme, register_scheme

ROOT = Path(__file__).resolve().parents[1]


# ---- the example of docs/extending.md -----------------------------------------------


class ToyAE(nnx.Module):
    """Two 3x3 convs: a (bad) autoencoder without a bottleneck."""

    def __init__(self, cfg, image_size, *, in_channels=1, rngs):
        self.body = nnx.List([conv(in_channels, 4, 3, rngs=rngs), conv(4, 1, 3, rngs=rngs)])

    def __call__(self, x, *, key=None):
        h = self.body[1](nnx.relu(self.body[0](x)))
        return AEOutput(h, h, None, h)

    def kl(self, out):
        return jnp.zeros(out.recon.shape[:1])


def toy_loss(model, x, key, cfg):
    rec = losses.reconstruction_error(x, model(x).recon, "l1")
    return rec.mean(), {"rec": rec.mean()}


def blend(model, y, mask, key, cfg, lam=None, train_cfg=None):
    """A restoration with a weight: lam * y + (1 - lam) * recon inside the mask."""
    lam = jnp.reshape(jnp.asarray(cfg.lam if lam is None else lam, y.dtype), (-1, 1, 1, 1))
    w = jnp.clip(lam, 0.0, 1.0)
    x = (w * y + (1 - w) * model(y).recon) * mask + y * (1 - mask)
    return Restoration(x, jnp.zeros((0,), y.dtype))


CONFIG_FILE = '''
from jaxuad.config import Config, ModelConfig, RestoreConfig, apply_variant

def get_config(variant="default"):
    return apply_variant(Config(model=ModelConfig(name="toy_ae"),
                                restore=RestoreConfig(method="toy_blend")), "smoke")
'''


@pytest.fixture
def toy_registered():
    register_scheme("toy", Scheme(lambda c: [Phase("ae", ("body",), toy_loss, 1e-3)]))
    register_model(ModelSpec("toy_ae", ToyAE, "toy", "two convs", "the test suite"))
    register_method(
        MethodSpec(
            "toy_blend", "lam * input + (1 - lam) * reconstruction", "the test suite",
            restore=blend, needs_lambda=True,
            accepts=lambda spec, c: None if spec.name == "toy_ae" else "needs toy_ae",
        )
    )  # fmt: skip
    yield
    MODELS.pop("toy_ae"), METHODS.pop("toy_blend"), SCHEMES.pop("toy")


def test_a_toy_model_and_method_registered_here_run_through_the_commands(
    toy_registered, phantom_dir, tmp_path
):
    """Registered from this file alone (no edit to jaxuad/): train, calibrate, restore and
    evaluate go through the command lines' own code."""
    config = tmp_path / "toy.py"
    config.write_text(CONFIG_FILE)
    healthy, lesion = phantom_dir / "healthy", phantom_dir / "lesion"
    run, quiet = tmp_path / "run", "--no-progress"
    assert train_cli.main(["--model", str(config), "--data", str(healthy), "--modality",
                           "FLAIR", "--workdir", str(run), quiet]) == 0  # fmt: skip
    grid = "restore.lam_grid=0,0.5,1"
    assert restore_cli.main(["--calibrate", "--workdir", str(run), "--data", str(healthy),
                             "--set", grid, quiet]) == 0  # fmt: skip
    cal = json.loads((run / "calibration.json").read_text())["toy_blend/tv"]
    assert cal["ssim"][-1] == pytest.approx(1.0)  # lam = 1 returns the input itself
    for name, data in (("healthy", healthy), ("lesion", lesion)):
        assert restore_cli.main(["--workdir", str(run), "--data", str(data), "--out",
                                 str(tmp_path / name), quiet]) == 0  # fmt: skip
    summary = json.loads((tmp_path / "lesion" / "restore.json").read_text())
    assert (summary["method"], summary["model"], summary["lam"]) == ("toy_blend", "toy_ae",
                                                                      cal["lam"])  # fmt: skip
    assert evaluate_cli.main(["--pred", str(tmp_path / "lesion"), "--data", str(lesion),
                              "--healthy", str(tmp_path / "healthy"), "--out",
                              str(tmp_path / "eval"), quiet]) == 0  # fmt: skip
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["method"] == "toy_blend" and 0 <= metrics["summary"]["auroc"] <= 1


def test_the_method_registry_checks_a_method_against_the_model(toy_registered):
    from jaxuad.config import ConfigError, load_config, override

    with pytest.raises(ConfigError, match="restore.method: toy_blend needs toy_ae"):
        override(load_config("svae"), ["restore.method=toy_blend"])
    with pytest.raises(ConfigError, match="lg_neural needs a run trained with a variance"):
        override(load_config("svae"), ["restore.method=lg_neural"])
    assert override(load_config("vae_chen"), ["restore.method=lg_neural"])


# ---- names live in their registries ------------------------------------------------

# Names live in the registries and in configs/ (the models' configs and the papers'
# protocols, configs/reproduce/), which this test does not read.
REGISTRIES = {"jaxuad/models/builtin.py", "jaxuad/restore/methods.py"}


def test_no_model_or_method_name_is_written_outside_its_registry():
    names = set(MODELS) | set(METHODS)
    found = []
    for path in sorted((ROOT / "jaxuad").rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        if rel in REGISTRIES:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in names:
                found.append(f"{rel}:{node.lineno}: {node.value!r}")
    assert found == []


def test_the_name_check_finds_a_name(tmp_path):
    tree = ast.parse('if model == "svae":\n    pass\n"""a docstring naming svae"""\n')
    hits = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)]
    assert "svae" in hits and sum(h == "svae" for h in hits) == 1


# ---- the refactor changed no result -------------------------------------------------

REFERENCE = ROOT / "tests" / "data" / "smoke_metrics.json"


def test_smoke_pipeline_metrics_are_unchanged(phantom_dir, tmp_path):
    """A smoke svae through the commands: metrics.json equals the one recorded before the
    registries (written by this test at commit b82973e, JAXUAD_WRITE_REFERENCE=1)."""
    healthy, lesion, run = phantom_dir / "healthy", phantom_dir / "lesion", tmp_path / "run"
    quiet = "--no-progress"
    assert train_cli.main(["--model", "svae", "--variant", "smoke", "--data", str(healthy),
                           "--modality", "FLAIR", "--workdir", str(run), quiet]) == 0  # fmt: skip
    for name, data in (("healthy", healthy), ("lesion", lesion)):
        assert restore_cli.main(["--workdir", str(run), "--data", str(data), "--out",
                                 str(tmp_path / name), quiet]) == 0  # fmt: skip
    assert evaluate_cli.main(["--pred", str(tmp_path / "lesion"), "--data", str(lesion),
                              "--healthy", str(tmp_path / "healthy"), "--out",
                              str(tmp_path / "eval"), quiet]) == 0  # fmt: skip
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    keep = ("model", "latent", "method", "settings", "thresholds", "summary", "at_threshold",
            "ceiling", "subjects")
    got = {k: metrics[k] for k in keep}
    if os.environ.get("JAXUAD_WRITE_REFERENCE") == "1":
        REFERENCE.parent.mkdir(exist_ok=True)
        REFERENCE.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    want = json.loads(REFERENCE.read_text())
    flat_got, flat_want = _flatten(got), _flatten(want)
    for flat in (flat_got, flat_want):  # where the files were (tmp folders) differs
        for k in [k for k in flat if k.endswith("/source")]:
            del flat[k]
    assert flat_got.keys() == flat_want.keys()
    for k, v in flat_want.items():
        if isinstance(v, float):
            assert flat_got[k] == pytest.approx(v, rel=1e-4, abs=1e-6), k
        else:
            assert flat_got[k] == v, k


def _flatten(obj, prefix=""):
    if isinstance(obj, dict):
        return {k2: v for k, x in obj.items() for k2, v in _flatten(x, f"{prefix}/{k}").items()}
    if isinstance(obj, list):
        return {k2: v for i, x in enumerate(obj) for k2, v in _flatten(x, f"{prefix}/{i}").items()}
    return {prefix: obj}


def test_jit_of_a_registered_method_compiles_once(toy_registered):
    from jaxuad.config import RestoreConfig
    from jaxuad.restore import restore

    model = ToyAE(None, 8, rngs=nnx.Rngs(0))
    cfg = RestoreConfig(method="toy_blend", lam=0.5)
    y, m = jnp.ones((2, 8, 8, 1)), jnp.ones((2, 8, 8, 1))
    x = jax.jit(lambda y: restore("toy_blend", model, y, m, jax.random.key(0), cfg).x)(y)
    np.testing.assert_allclose(x, 0.5 * y + 0.5 * model(y).recon, rtol=1e-6)
