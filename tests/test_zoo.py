"""The model zoo: every model's shapes, training scheme, variance network, GMVAE ELBO,
sampling and resumable training."""

import dataclasses
import json
import subprocess

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxuad import models
from jaxuad.config import load_config
from jaxuad.models.variance import VarianceNet, decoder_samples, variance_target
from jaxuad.train import (
    Checkpoints,
    build_model,
    init_state,
    load_run,
    make_train_step,
    negative_elbo,
    phases_for,
    train,
)
from tests.conftest import require_shared_data, smoke_config
from tests.conftest import script as _script

AUTOENCODERS = ["dae", "sae", "dvae", "svae", "sae_gan", "anovaegan", "vae_chen", "aae", "gmvae"]
ALL = [*AUTOENCODERS, "anogan"]
GENERATIVE = ["dvae", "svae", "anovaegan", "vae_chen", "aae", "gmvae", "anogan"]


def _count(tree) -> int:
    return sum(x.size for x in jax.tree.leaves(tree))


def _with_train(cfg, **kw):
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **kw))


def test_every_model_has_a_config_and_a_scheme():
    assert set(ALL) <= set(models.model_names(network=True))
    for name in models.model_names(network=True):
        for variant in ("default", "smoke"):
            cfg = load_config(name, variant)
            assert cfg.model.name == name
            assert phases_for(cfg, 10)  # raises for a model without a scheme


@pytest.mark.parametrize("name", ALL)
def test_shapes_and_groups(name):
    cfg = smoke_config(name)
    model = models.create(cfg.model, 32, rngs=nnx.Rngs(0))
    key = jax.random.key(0)
    if name == "anogan":
        assert jax.jit(lambda k: model.sample(k, 3))(key).shape == (3, 32, 32, 1)
        assert jax.jit(model.disc)(jnp.ones((2, 32, 32, 1))).shape == (2,)
        return
    out = jax.jit(lambda x: model(x, key=key))(jnp.ones((2, 32, 32, 1)))
    assert out.recon.shape == (2, 32, 32, 1)
    assert out.mean.shape == (2, *model.latent_shape)
    assert (out.logvar is not None) == model.variational
    if name in ("sae_gan", "anovaegan"):
        assert jax.jit(model.disc)(out.recon).shape == (2,)
    if name == "aae":
        assert jax.jit(model.disc)(out.z).shape == (2,)
    if name in GENERATIVE:
        assert jax.jit(lambda k: model.sample(k, 3))(key).shape == (3, 32, 32, 1)
    if model.has_variance_net:
        assert jax.jit(model.var_net)(out.recon).shape == (2, 32, 32, 1)
    # Every parameter group is owned by some phase, so nothing is silently left untrained.
    _, params = build_model(cfg, 0)
    owned = {g for p in phases_for(cfg, 10) for g in p.owns}
    assert owned == set(params)


def test_paper_shapes_and_parameter_counts():
    x = jax.ShapeDtypeStruct((1, 128, 128, 1), jnp.float32)
    shapes = {}
    for name in ("vae_chen", "aae", "gmvae", "anovaegan"):
        graphdef, params = build_model(load_config(name), 0, abstract=True)
        out = jax.eval_shape(lambda p, x, g=graphdef: nnx.merge(g, p)(x), params, x)
        shapes[name] = out.mean.shape, params
    # Chen et al.: a 2x2x256 code at 128x128.
    assert shapes["vae_chen"][0] == shapes["aae"][0] == shapes["gmvae"][0] == (1, 2, 2, 256)
    # Baur et al.: AnoVAEGAN's code is the sVAE's, 16x16x64 at 256 = 8x8x64 at 128.
    assert shapes["anovaegan"][0] == (1, 8, 8, 64)
    params = shapes["vae_chen"][1]
    # Variance network: 3x3 convs 1-8-16-8-1 with biases.
    conv = lambda cin, cout, k=3: k * k * cin * cout + cout
    assert _count(params["var_net"]) == conv(1, 8) + conv(8, 16) + conv(16, 8) + conv(8, 1)
    # Chen's encoder: a stem conv, then six residual blocks, each conv_a, conv_b and a 1x1
    # projection, with 8, 16, ..., 256 channels.
    chans = (8, 8, 16, 32, 64, 128, 256)
    blocks = sum(
        conv(a, b) + conv(b, b) + conv(a, b, 1) for a, b in zip(chans[:-1], chans[1:], strict=True)
    )
    assert _count(params["encoder"]) == conv(1, 8) + blocks
    # GMVAE's mixture prior: K means and log-variances over 256 channels, K logits.
    assert _count(shapes["gmvae"][1]["prior"]) == 10 * (2 * 256 + 1)
    # AnoGAN: z of size 64.
    _, gan = build_model(load_config("anogan"), 0, abstract=True)
    assert gan["from_z"]["kernel"].shape[0] == 64


@pytest.mark.parametrize("name", AUTOENCODERS)
def test_reconstruction_falls_when_overfitting_one_batch(name, smoke_images):
    # The paper learning rates (2e-5 for Chen's models) are too slow for a short test.
    # The variance network (tested on its own below) does not change the reconstruction.
    cfg = _with_train(smoke_config(name), learning_rate=1e-3)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, variance_net=False))
    graphdef, params = build_model(cfg, 0)
    phases = phases_for(cfg, 100)
    chex.clear_trace_counter()  # chex counts by definition site, across parametrisations
    step = make_train_step(graphdef, phases, cfg.train, max_traces=1)  # never re-traced
    state, key = init_state(params, phases), jax.random.key(0)
    spread = np.linspace(0, len(smoke_images) - 1, 4).astype(int)  # distinct anatomy
    batch = jnp.asarray(smoke_images[spread])
    recs = []
    for _ in range(300):  # the plain AEs leave the all-background plateau after 30-210
        state, m = step(state, batch, key)
        recs.append(float(m["rec"]))
        assert m["finite"] == 1.0
    # Predicting all zeros (background) costs sum|x| (or sum x^2); a model that uses its
    # input beats that by far (the zero-initialised output layer starts there).
    zero = batch if cfg.train.recon_loss == "l1" else jnp.square(batch)
    zero_output = float(jnp.abs(zero).sum() / batch.shape[0])
    assert np.mean(recs[-5:]) < 0.5 * zero_output, recs[::30]


def test_anogan_generator_learns_a_fixed_image(smoke_images):
    cfg = _with_train(smoke_config("anogan"), adv_learning_rate=1e-3)
    graphdef, params = build_model(cfg, 0)
    phases = phases_for(cfg, 100)
    step = make_train_step(graphdef, phases, cfg.train)
    state, key = init_state(params, phases), jax.random.key(0)
    target = jnp.asarray(smoke_images[len(smoke_images) // 2])
    batch = jnp.broadcast_to(target, (4, *target.shape))
    sample = jax.jit(lambda p: nnx.merge(graphdef, p).sample(jax.random.key(5), 8))
    dist = lambda p: float(jnp.abs(sample(p) - target).mean())
    before, d_losses = dist(state.params), []
    for _ in range(250):
        state, m = step(state, batch, key)
        d_losses.append(float(m["disc_loss"]))
    # The discriminator learns to tell (below log 4 = chance), and the generator's samples
    # move towards the only image it has seen.
    assert np.mean(d_losses[-20:]) < np.log(4.0)
    assert dist(state.params) < 0.7 * before


MULTI_PHASE = ["sae_gan", "anovaegan", "aae", "anogan", "vae_chen"]


@pytest.mark.parametrize("name", MULTI_PHASE)
def test_each_phase_moves_only_its_own_parameters(name, smoke_images):
    cfg = smoke_config(name)
    graphdef, params = build_model(cfg, 0)
    batch = jnp.asarray(smoke_images[:4])
    for phase in phases_for(cfg, 100):
        step = make_train_step(graphdef, [phase], cfg.train)
        state = init_state(params, [phase])
        before = jax.tree.map(np.asarray, params)
        for _ in range(2):  # Adam's first step moves every parameter with a gradient
            state, m = step(state, batch, jax.random.key(1))
        assert m["finite"] == 1.0
        for group in params:
            moved = any(
                not np.array_equal(a, b)
                for a, b in zip(
                    jax.tree.leaves(before[group]),
                    jax.tree.leaves(state.params[group]),
                    strict=True,
                )
            )
            assert moved == (group in phase.owns), (name, phase.name, group)
        params = before


def test_joint_generator_update_is_one_objective(smoke_images):
    """``train.generator_update="joint"``: no "gen" phase; the "ae" phase's loss is the
    reconstruction objective plus adv_weight times the generator's -log D, and it trains
    the autoencoder only (the discriminator keeps its own phase)."""
    from jaxuad.config import ConfigError
    from jaxuad.train import losses

    cfg = smoke_config("anovaegan")
    joint = _with_train(cfg, generator_update="joint", adv_weight=3.0)
    phases = phases_for(joint, 10)
    assert [p.name for p in phases] == ["ae", "disc"]
    assert "disc" not in phases[0].owns
    graphdef, params = build_model(joint, 0)
    model, x, key = nnx.merge(graphdef, params), jnp.asarray(smoke_images[:4]), jax.random.key(2)
    got, m = phases[0].loss(model, x, key, joint.train)
    rec = losses.autoencoder_loss(model, x, key, joint.train)[0]
    gen = losses.image_gen_loss(model, x, key, dataclasses.replace(joint.train, adv_weight=1.0))
    np.testing.assert_allclose(got, rec + 3.0 * gen[0], rtol=1e-5)
    np.testing.assert_allclose(m["gen"], gen[0], rtol=1e-5)
    with pytest.raises(ConfigError, match="generator_update"):
        phases_for(_with_train(cfg, generator_update="both"), 10)


class _ToyModel(nnx.Module):
    """A linear-Gaussian decoder g(z) = W z + b with q(z|x) = N(m, diag(s^2)), constant in x."""

    def __init__(self, d_z=3, d_x=5):
        ks = jax.random.split(jax.random.key(0), 4)
        self.w = jax.random.normal(ks[0], (d_z, d_x))
        self.b = jax.random.normal(ks[1], (d_x,))
        self.m = jax.random.normal(ks[2], (1, d_z))
        self.logvar = 0.5 * jax.random.normal(ks[3], (1, d_z))

    def encode(self, x):
        return jnp.broadcast_to(self.m, (x.shape[0], self.m.shape[1])), jnp.broadcast_to(
            self.logvar, (x.shape[0], self.m.shape[1])
        )

    def decode(self, z):
        return z @ self.w + self.b


def test_variance_target_matches_closed_form_on_a_linear_decoder():
    toy = _ToyModel()
    x = jax.random.normal(jax.random.key(9), (2, 5))
    # E[(W^T z + b - x)^2]_j = (W^T m + b - x)_j^2 + sum_k W_kj^2 s_k^2
    mean_out = toy.m @ toy.w + toy.b
    exact = jnp.square(mean_out - x) + jnp.exp(toy.logvar) @ jnp.square(toy.w)
    estimate = variance_target(toy, x, jax.random.key(3), 20000)
    np.testing.assert_allclose(estimate, exact, rtol=0.05)
    # The L decoder samples are vmapped: the same as drawing them one by one.
    eps = jax.random.normal(jax.random.key(4), (7, 2, 3))
    stacked = decoder_samples(toy, x, jax.random.key(4), 7)
    for e, s in zip(eps, stacked, strict=True):
        z = toy.m + jnp.exp(0.5 * toy.logvar) * e
        np.testing.assert_allclose(s, toy.decode(z), rtol=1e-5, atol=1e-5)


def test_variance_net_output_is_positive():
    net = VarianceNet(rngs=nnx.Rngs(0))
    v = net(jax.random.normal(jax.random.key(0), (2, 16, 16, 1)) * 10)
    assert v.shape == (2, 16, 16, 1) and bool(jnp.all(v > 0))


def test_gmvae_elbo_is_finite_and_its_image_gradient_matches_finite_differences():
    cfg = smoke_config("gmvae")
    model = models.create(cfg.model, 32, rngs=nnx.Rngs(0))
    x = jax.random.uniform(jax.random.key(1), (2, 32, 32, 1))
    key = jax.random.key(2)
    f = lambda x: negative_elbo(model, x, key, cfg.train).sum()
    value, grad = jax.jit(jax.value_and_grad(f))(x)
    assert np.isfinite(float(value)) and bool(jnp.all(jnp.isfinite(grad)))
    # The mixture KL is a real estimate, not the standard-normal closed form.
    out = model(x, key=key)
    kl = model.kl(out)
    assert kl.shape == (2,) and bool(jnp.all(jnp.isfinite(kl)))
    # Directional central differences (float32: eps 1e-2, several directions).
    f64 = jax.jit(f)
    for i in range(3):
        v = jax.random.normal(jax.random.fold_in(key, i), x.shape)
        v = v / jnp.linalg.norm(v)
        eps = 1e-2
        fd = (float(f64(x + eps * v)) - float(f64(x - eps * v))) / (2 * eps)
        np.testing.assert_allclose(fd, float(jnp.vdot(grad, v)), rtol=2e-2, atol=1e-2)


# ---------------------------------------------------------------------------------------
# Training schemes end to end: checkpoints, resume, NaN guard, sampling.


@pytest.fixture(scope="module")
def ixi_manifest(tmp_path_factory):
    """A CSV manifest of two real IXI subjects (T1w)."""
    from jaxuad.data import discover

    root = require_shared_data()
    path = tmp_path_factory.mktemp("ixi") / "manifest.csv"
    rows = [f"{s.id},{s.image},{s.brainmask}," for s in discover(root / "ixi", "T1w")[:2]]
    path.write_text("subject,image,brainmask,lesion\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def ixi_images(ixi_manifest):
    """[N, 32, 32, 1] T1w slices of the two subjects."""
    from jaxuad.train import training_images

    return training_images(smoke_config("svae", path=str(ixi_manifest), modality="T1w"))


SCHEMES = {
    "anovaegan-separate": {"generator_update": "separate"},  # three alternating phases
    "aae": {},  # latent adversary + joint variance network
    "anogan": {},  # generator/discriminator only
    "svae-variance-after": {"variance_schedule": "after"},  # a second stage
}


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_each_scheme_resumes_to_identical_weights(scheme, smoke_images, tmp_path):
    name = scheme.split("-")[0]
    cfg = smoke_config(name)
    if scheme.endswith("after"):
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, variance_net=True))
    cfg = _with_train(cfg, epochs=1, log_every=3, checkpoint_every=4, **SCHEMES[scheme])
    images = smoke_images[:24]  # 6 steps per epoch
    total = 12 if scheme.endswith("after") else 6
    a = train(cfg, tmp_path / "straight", images=images, progress=False)
    assert a.steps == total
    # Killed mid-run: for "after", at step 4 of the model stage, resumed across the switch.
    train(cfg, tmp_path / "killed", images=images, stop_after=4, progress=False)
    assert Checkpoints(tmp_path / "killed").latest_step() == 4
    b = train(cfg, tmp_path / "killed", images=images, resume=True, progress=False)
    assert b.steps == total
    for x, y in zip(
        jax.tree.leaves(load_run(tmp_path / "straight").params),
        jax.tree.leaves(load_run(tmp_path / "killed").params),
        strict=True,
    ):
        np.testing.assert_array_equal(x, y)
    rows = [json.loads(ln) for ln in (tmp_path / "killed" / "metrics.jsonl").open()]
    assert all(f"{p.name}_loss" in rows[-1] for p in phases_for(cfg, 6))
    if scheme.endswith("after"):
        # The variance stage trains var_net only: every model group stays as step 6 left it.
        train(cfg, tmp_path / "stage1", images=images, stop_after=6, progress=False)
        stage1, final = load_run(tmp_path / "stage1").params, load_run(tmp_path / "straight").params
        for group in final:
            same = all(
                np.array_equal(x, y)
                for x, y in zip(
                    jax.tree.leaves(stage1[group]), jax.tree.leaves(final[group]), strict=True
                )
            )
            assert same == (group != "var_net"), group
        assert rows[-1]["ae_loss"] == 0.0 and rows[-1]["variance_loss"] > 0.0


@pytest.mark.parametrize("name", ["svae", "anovaegan"])
def test_nan_guard_stops_and_keeps_last_good_checkpoint(name, smoke_images, tmp_path, monkeypatch):
    from jaxuad.train import TrainingDiverged
    from jaxuad.train import trainer as trainer_module

    real = trainer_module.phases_for

    def poisoned_phases(config, spe):
        phases = real(config, spe)

        def poison(loss):
            def f(model, x, key, cfg):
                value, m = loss(model, x, key, cfg)
                return value + jnp.where(x.sum() < -1.0, jnp.nan, 0.0), m

            return f

        # Poison the last phase: the discriminator's for anovaegan.
        return (*phases[:-1], phases[-1]._replace(loss=poison(phases[-1].loss)))

    images = smoke_images[:24].copy()
    sixth_batch = trainer_module.batch_indices(24, 4, 0, 0)[5]
    images[sixth_batch] = -1.0  # step 6 is the first to see them: NaN from there on
    monkeypatch.setattr(trainer_module, "phases_for", poisoned_phases)
    # log_every=3, checkpoint_every=4: step 4 is saved, the NaN is caught at step 6.
    cfg = _with_train(smoke_config(name), epochs=2, log_every=3, checkpoint_every=4)
    with pytest.raises(TrainingDiverged, match="Last good checkpoint: step 4"):
        train(cfg, tmp_path, images=images, progress=False)
    assert Checkpoints(tmp_path).latest_step() == 4
    assert all(np.all(np.isfinite(p)) for p in jax.tree.leaves(load_run(tmp_path).params))


def test_train_on_real_ixi_slices_and_sample(ixi_images, tmp_path):
    from jaxuad.sampling import sample_run

    images = ixi_images
    for name in ("vae_chen", "anogan"):
        cfg = _with_train(smoke_config(name), epochs=1)
        result = train(cfg, tmp_path / name, images=images, progress=False)
        assert result.steps == len(images) // 4
        assert np.isfinite(result.final_metrics["loss"])
        a = sample_run(tmp_path / name, 5, seed=3)
        assert a.shape == (5, 32, 32) and np.all(np.isfinite(a))
        np.testing.assert_array_equal(a, sample_run(tmp_path / name, 5, seed=3))
        assert not np.array_equal(a, sample_run(tmp_path / name, 5, seed=4))


def _sample_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([_script("jaxuad-sample"), *args], capture_output=True, text=True)


def test_sample_cli(trained_run, tmp_path):
    out = tmp_path / "grid.png"
    r = _sample_cli(
        f"--workdir={trained_run}", "-n", "6", f"--out={out}", f"--npy={tmp_path}/s.npy"
    )
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.load(tmp_path / "s.npy").shape == (6, 32, 32)


def test_sample_refuses_a_plain_autoencoder(smoke_images, tmp_path):
    from jaxuad.config import ConfigError
    from jaxuad.sampling import sample_run

    train(
        _with_train(smoke_config("sae"), epochs=1),
        tmp_path,
        images=smoke_images[:8],
        progress=False,
    )
    with pytest.raises(ConfigError, match="not a generative model"):
        sample_run(tmp_path, 4)
    r = _sample_cli(f"--workdir={tmp_path}", f"--out={tmp_path}/x.png")
    assert r.returncode == 2 and "not a generative model" in r.stderr
    assert not (tmp_path / "x.png").exists()
