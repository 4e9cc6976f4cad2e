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
