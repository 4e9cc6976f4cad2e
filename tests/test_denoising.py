"""The coarse-noise denoising autoencoder (Kascenas et al. 2022) and 2.5D context slices."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxuad.config import ConfigError, DataConfig, ModelConfig, load_config, override
from jaxuad.data import load_volume, slice_volume
from jaxuad.data.slices import context_index
from jaxuad.models.unet import UNet, coarse_noise
from jaxuad.train import losses


def _radial_power(noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean power by integer radial frequency (cycles per frame) of [B, S, S] fields."""
    s = noise.shape[-1]
    power = np.mean(np.abs(np.fft.fft2(noise)) ** 2, axis=0)
    f = np.fft.fftfreq(s) * s
    radius = np.rint(np.hypot(*np.meshgrid(f, f, indexing="ij"))).astype(int)
    return np.bincount(radius.ravel(), power.ravel()), np.bincount(radius.ravel())


def test_coarse_noise_lies_below_its_grid_resolution():
    """Noise on an r x r grid, upsampled: most of its power below the grid's Nyquist
    frequency (r / 2 cycles per frame) and almost all below r, where white noise of the same
    size has a small part of it (bilinear interpolation leaks a little above r / 2)."""
    res, s = 8, 64
    noise = np.asarray(jax.jit(coarse_noise, static_argnums=(1, 2, 3))(
        jax.random.key(0), (256, s, s, 1), res, 0.2))[..., 0]  # fmt: skip
    power, _ = _radial_power(noise)
    white, _ = _radial_power(np.random.default_rng(0).standard_normal((256, s, s)))
    for cut, coarse_at_least, white_at_most in ((res // 2, 0.8, 0.02), (res, 0.95, 0.1)):
        assert power[: cut + 1].sum() / power.sum() > coarse_at_least
        assert white[: cut + 1].sum() / white.sum() < white_at_most
    # interpolation between independent grid values lowers the spread below sigma
    assert 0.5 * 0.2 < noise.std() < 0.2 and abs(noise.mean()) < 0.01


def test_coarse_noise_is_placed_anew_per_image_and_key():
    a = coarse_noise(jax.random.key(0), (4, 32, 32, 2), 4, 0.2)
    b = coarse_noise(jax.random.key(1), (4, 32, 32, 2), 4, 0.2)
    assert a.shape == (4, 32, 32, 2) and not np.allclose(a, b)
    assert not np.allclose(a[0], a[1]) and not np.allclose(a[..., 0], a[..., 1])


def test_unet_restores_the_centre_slice_and_its_loss_trains():
    cfg = ModelConfig(name="unet_dae", features=(4, 8, 8), conv_impl="xla")
    model = UNet(cfg, 16, in_channels=3, rngs=nnx.Rngs(0))
    x = jax.random.uniform(jax.random.key(1), (2, 16, 16, 3))
    assert model(x).recon.shape == (2, 16, 16, 1)
    tc = load_config("unet_dae").train
    graphdef, params = nnx.split(model)

    def loss(p):
        return losses.denoising_loss(nnx.merge(graphdef, p), x, jax.random.key(2), tc)[0]

    value, grads = jax.jit(jax.value_and_grad(loss))(params)
    assert np.isfinite(value) and any(np.abs(g).max() > 0 for g in jax.tree.leaves(grads))


def test_unet_sizes_are_checked_when_the_config_is_built():
    with pytest.raises(ConfigError, match="data.image_size: 100 is not divisible by 2\\*\\*3"):
        override(load_config("unet_dae"), ["data.image_size=100"])


def test_context_index_repeats_the_edge_slices():
    np.testing.assert_array_equal(context_index(np.array([0, 5, 9]), 10, 3),
                                  [[0, 0, 1], [4, 5, 6], [8, 9, 9]])  # fmt: skip
    np.testing.assert_array_equal(context_index(np.array([4]), 10, 1), [[4]])


@pytest.mark.parametrize("fit", ["pad", "resize"])
def test_context_slices_are_neighbours_and_map_back_onto_the_grid(phantom_dir, fit):
    src = phantom_dir / "healthy"
    vol = load_volume("h000", src / "sub-h000_FLAIR.nii.gz", src / "sub-h000_brainmask.nii.gz",
                      None)  # fmt: skip
    size = 112 if fit == "pad" else 32
    one = slice_volume(vol, DataConfig(modality="FLAIR", fit=fit, image_size=size))
    three = slice_volume(vol, dataclasses.replace(
        DataConfig(modality="FLAIR", fit=fit, image_size=size), context_slices=3))  # fmt: skip
    assert three.images.shape == (*one.images.shape[:3], 3)
    np.testing.assert_array_equal(three.images[..., 1:2], one.images)
    np.testing.assert_array_equal(three.masks, one.masks)
    np.testing.assert_array_equal(three.index, one.index)
    # channel 0 of slice i is slice i - 1 (where i - 1 was selected too)
    for j in range(1, len(one.index)):
        if one.index[j] - 1 == one.index[j - 1]:
            np.testing.assert_array_equal(three.images[j, ..., 0], one.images[j - 1, ..., 0])
    # a restoration of the centre slices goes back onto the input grid as with one slice
    frames = three.images[..., 1:2] + 0.25
    np.testing.assert_allclose(three.restored_volume(frames)[0],
                               one.restored_volume(frames)[0])  # fmt: skip


def test_methods_that_optimise_the_slice_refuse_context_slices():
    with pytest.raises(ConfigError, match="lg_est restores single slices"):
        override(load_config("vae_chen"), ["data.context_slices=3", "model.variance_net=false",
                                           "restore.method=lg_est"])  # fmt: skip
    with pytest.raises(ConfigError, match="with a variance network restores single slices"):
        override(load_config("vae_chen"), ["data.context_slices=3"])
    assert override(load_config("svae"), ["data.context_slices=3"]).data.context_slices == 3
    with pytest.raises(ConfigError, match="data.context_slices: must be odd"):
        override(load_config("svae"), ["data.context_slices=2"])


def test_a_25d_denoiser_trains_and_restores_through_the_commands(phantom_dir, tmp_path):
    from jaxuad.cli import restore as restore_cli
    from jaxuad.cli import train as train_cli

    run = tmp_path / "run"
    assert train_cli.main(["--model", "unet_dae", "--variant", "smoke", "--data",
                           str(phantom_dir / "healthy"), "--modality", "FLAIR", "--workdir",
                           str(run), "--set", "data.context_slices=3", "--set",
                           "train.noise_resolution=4", "--no-progress"]) == 0  # fmt: skip
    assert restore_cli.main(["--workdir", str(run), "--data", str(phantom_dir / "lesion"),
                             "--out", str(tmp_path / "pred"), "--no-progress"]) == 0  # fmt: skip
    assert len(list((tmp_path / "pred").glob("*_residual.nii.gz"))) == 2
    from jaxuad.train import load_run

    run = load_run(run)
    assert run.model()(jnp.zeros((1, 32, 32, 3))).recon.shape == (1, 32, 32, 1)
