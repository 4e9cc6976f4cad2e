import subprocess
from pathlib import Path

import pytest

from jaxuad.config import (
    Config,
    ConfigError,
    available_models,
    from_dict,
    load_config,
    override,
    to_dict,
)
from tests.conftest import script


def test_every_model_config_loads_in_both_variants():
    assert set(available_models()) >= {"dae", "sae", "dvae", "svae"}
    for name in available_models():
        assert load_config(name).model.name == name
        assert load_config(name, "smoke").data.image_size == 32


def test_paper_hyperparameters():
    c = load_config("svae")
    assert (c.train.batch_size, c.train.learning_rate, c.train.epochs) == (8, 1e-3, 150)
    assert load_config("dae").model.z_dim == 512
    assert (c.model.bottleneck_res, c.model.z_channels) == (8, 64)  # 16/256 = 8/128
    assert load_config("sae", "sae1").model.bottleneck_res == 4  # 8/256 = 4/128
    assert load_config("sae", "sae1-smoke").model.bottleneck_res == 1


def test_override_parses_declared_types():
    c = override(
        Config(),
        [
            "train.epochs=5",
            "train.learning_rate=0.5",
            "data.path=none",
            "model.features=8,16",
            "model.bottleneck_res=32",  # two stages reach 32 from 128
            "evaluate.connectivity=6",
        ],
    )
    assert c.train.epochs == 5 and c.train.learning_rate == 0.5
    assert c.data.path is None and c.model.features == (8, 16)
    assert c.evaluate.connectivity == 6


@pytest.mark.parametrize(
    "bad, needle",
    [
        ("train.epochs", "section.key=value"),
        ("nope.x=1", "unknown section"),
        ("train.nope=1", "no key 'nope'"),
        ("train.epochs=five", "expected int"),
    ],
)
def test_override_errors_are_explicit(bad, needle):
    with pytest.raises(ConfigError, match=needle):
        override(Config(), [bad])


def test_json_round_trip_and_unknown_model():
    c = load_config("sae", "smoke")
    assert from_dict(to_dict(c)) == c
    with pytest.raises(ConfigError, match="available"):
        load_config("nonexistent")


def test_runs_saved_before_generator_update_load_as_they_were_trained():
    """AE-GAN/AnoVAEGAN runs saved before ``train.generator_update`` existed trained the
    generator in its own phase: they load as "separate"; other models take the default."""
    for name, want in [("anovaegan", "separate"), ("sae_gan", "separate"), ("svae", "joint")]:
        d = to_dict(load_config(name))
        del d["train"]["generator_update"]
        assert from_dict(d).train.generator_update == want
    assert load_config("anovaegan").train.generator_update == "joint"


@pytest.mark.parametrize(
    "bad, needle",
    [
        ("restore.prior=l2", "restore.prior: must be one of tv | l1"),
        ("restore.method=lg", "restore.method: unknown method 'lg'; registered: reconstruction"),
        ("restore.lam=nan", "restore.lam: must be >= 0"),
        ("restore.steps=0", "restore.steps: must be >= 1"),
        ("data.normalization=robust", "data.normalization: must be one of"),
        ("data.modality=PD", "data.modality: must be one of"),
        ("evaluate.connectivity=8", "evaluate.connectivity: must be one of 6 | 26"),
        ("evaluate.median_size=4", "evaluate.median_size: must be odd"),
        ("evaluate.seg_threshold=fpr7", "evaluate.seg_threshold: must be one of"),
        ("train.epochs=0", "train.epochs: must be >= 1"),
        ("train.learning_rate=-1e-3", "train.learning_rate: must be a finite number > 0"),
        ("train.prng_impl=philox", "train.prng_impl: must be one of"),
        ("model.conv_impl=gpu", "model.conv_impl: must be one of auto | xla | cpu"),
        ("model.name=unet", "model.name: unknown model 'unet'; registered: dae"),
        ("data.image_size=100", "data.image_size / model.bottleneck_res: bottleneck_res 8"),
        ("restore.method=atlas", "restore.method: atlas needs a run of a voxel-wise baseline"),
    ],
)
def test_values_are_checked_when_the_config_is_built(bad, needle):
    with pytest.raises(ConfigError, match=needle.replace("|", r"\|")):
        override(Config(), [bad])


def test_sections_check_types_however_they_are_built():
    """``dataclasses.replace`` and stored config.json files go through the same checks."""
    import dataclasses

    with pytest.raises(ConfigError, match="train.batch_size: expected int, got 8.5"):
        dataclasses.replace(Config().train, batch_size=8.5)
    d = to_dict(Config())
    d["restore"]["lam_grid"] = [1.0, -2.0]
    with pytest.raises(ConfigError, match="restore.lam_grid: must be >= 0"):
        from_dict(d)


def test_runs_record_their_prng_implementation():
    """A run's keys come from ``train.prng_impl`` whatever JAX's default is; config.json
    files written before the field existed were trained with rbg (jaxuad's old default)."""
    import jax

    c = load_config("svae", "smoke")
    assert jax.random.key_impl(c.train.key(0)) == jax.random.key_impl(jax.random.key(0, impl="rbg"))
    d = to_dict(c)
    del d["train"]["prng_impl"]
    assert from_dict(d).train.prng_impl == "rbg"
    assert to_dict(c)["train"]["prng_impl"] == "rbg"


def _cli(name: str, *args: str, cwd: Path):
    cmd = [script(f"jaxuad-{name}"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)


def test_bad_settings_stop_the_commands_before_they_write(tmp_path):
    """A bad ``--set`` (or one that disagrees with an option) is one line ``error: ...``,
    exit 2, and no run or output folder."""
    r = _cli("train", "--model", "svae", "--variant", "smoke", "--workdir", "w",
             "--set", "train.epochs=0", cwd=tmp_path)  # fmt: skip
    assert (r.returncode, r.stderr) == (2, "error: train.epochs: must be >= 1, got 0\n")
    for extra, needle in [
        (["--set", "restore.method=lg"], "unknown method 'lg'"),
        (["--method", "map", "--set", "restore.method=lg_est"], "disagree"),
        (["--lam", "-1"], "restore.lam: must be >= 0"),
    ]:
        r = _cli("restore", "--workdir", "w", "--data", "d", "--out", "o", *extra, cwd=tmp_path)
        assert r.returncode == 2 and r.stderr.startswith("error: ") and needle in r.stderr
        assert r.stderr.count("\n") == 1, r.stderr
    assert list(tmp_path.iterdir()) == []
