"""Iterative restoration: direction signs, prior gradients, the vmapped samples, one compile,
lambda calibration, SSIM against a reference formula, and the cohort driver."""

import dataclasses
import json
import subprocess
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxuad.config import ConfigError, RestoreConfig
from jaxuad.models.autoencoders import AEOutput, Autoencoder
from jaxuad.models.priors import MixturePrior
from jaxuad.restore import lg, pick_lambda, prior_cost, restore
from jaxuad.restore.iterative import local_gaussian
from jaxuad.similarity import ssim
from tests.conftest import script as _script


class _LinearVAE(nnx.Module):
    """q(z|x) = N(A x, diag(s^2)), g(z) = W z: a model whose local Gaussian is known."""

    def __init__(self, d=8, k=3, logvar=-2.0):
        ks = jax.random.split(jax.random.key(0), 2)
        self.w = nnx.Param(jax.random.normal(ks[0], (k, d)) / np.sqrt(k))
        self.a = nnx.Param(jax.random.normal(ks[1], (d, k)) / np.sqrt(d))
        self.variational = True
        self.has_variance_net = False
        self.logvar = logvar

    def encode(self, x):
        flat = x.reshape(x.shape[0], -1)
        return flat @ self.a[...], jnp.full((x.shape[0], self.a.shape[1]), self.logvar)

    def decode(self, z):
        return (z @ self.w[...]).reshape(z.shape[0], 2, 4, 1)


def _cfg(**kw):
    return RestoreConfig(**{"steps": 1, "learning_rate": 1e-2, "samples": 8, **kw})


def test_one_step_moves_towards_mu_without_prior_and_towards_y_with_a_large_one():
    model = _LinearVAE()
    y = jax.random.normal(jax.random.key(1), (2, 2, 4, 1))
    mask = jnp.ones_like(y)
    key = jax.random.key(2)
    # The step's mu is drawn with fold_in(key, 0), as the first iteration does.
    mu, _ = local_gaussian(model, y, jax.random.fold_in(key, 0), 8, "est", 1e-4)
    x = restore("lg_est", model, y, mask, key, _cfg(), lam=0.0).x
    assert float(jnp.linalg.norm(x - mu)) < float(jnp.linalg.norm(y - mu))
    # From a start away from Y, a large lambda makes the step reduce R(Y, X).
    x0 = y + jax.random.normal(jax.random.key(3), y.shape)
    for prior in ("tv", "l1"):
        x = restore("lg_est", model, y, mask, key, _cfg(prior=prior), lam=1e4, x0=x0).x
        r = lambda x, p=prior: float(prior_cost(p, y, x, 0.01).sum())
        assert r(x) < r(x0), prior


@pytest.mark.parametrize("prior", ["tv", "l1"])
def test_prior_gradients_match_finite_differences(prior):
    y = jax.random.normal(jax.random.key(0), (1, 6, 7, 1))
    x = y + jax.random.normal(jax.random.key(1), y.shape)
    f = lambda x: prior_cost(prior, y, x, 0.05).sum()
    g = jax.grad(f)(x)
    x64, y64 = np.asarray(x, np.float64), np.asarray(y, np.float64)

    def f_np(x):
        d = x - y64
        if prior == "l1":
            return np.abs(d).sum()
        dx = d[:, 1:, :-1] - d[:, :-1, :-1]
        dy = d[:, :-1, 1:] - d[:, :-1, :-1]
        return (np.sqrt(dx**2 + dy**2 + 0.05**2) - 0.05).sum()

    eps = 1e-4
    for idx in [(0, 0, 0, 0), (0, 3, 2, 0), (0, 5, 6, 0), (0, 2, 5, 0)]:
        e = np.zeros_like(x64)
        e[idx] = eps
        fd = (f_np(x64 + e) - f_np(x64 - e)) / (2 * eps)
        np.testing.assert_allclose(float(g[idx]), fd, rtol=1e-3, atol=1e-4)


class _PPCA(nnx.Module):
    """Probabilistic PCA with a diagonal loading: z ~ N(0, I), x = w * z + N(0, s2), so
    p(x) = N(0, diag(c)) with c = w^2 + s2, and q(z|x) is the exact posterior
    N(w x / c, s2 / c). The variance network returns the decoder noise s2."""

    def __init__(self, w, s2):
        self.w, self.s2 = jnp.asarray(w), s2
        self.variational = True
        self.has_variance_net = True

    def encode(self, x):
        flat = x.reshape(x.shape[0], -1)
        c = self.w**2 + self.s2
        return flat * self.w / c, jnp.broadcast_to(jnp.log(self.s2 / c), flat.shape)

    def decode(self, z):
        return (z * self.w).reshape(z.shape[0], 2, 4, 1)

    def var_net(self, x):
        return jnp.full_like(x, self.s2)


@pytest.mark.parametrize("method", ["lg_neural", "lg_est"])
def test_lg_converges_to_the_analytic_map_solution_of_a_linear_gaussian_model(method):
    """Here mu(X) = X - s2 C^-1 X, so X - mu = s2 grad(-log p(X)): the local Gaussian's pull
    is the true prior's gradient, preconditioned by s2 / Sigma. With the L1 prior the fixed
    point of LG has a closed form, per pixel: X = clip(Y, -lam b, lam b).

    * ``lg_neural`` (Sigma = s2): b = c, the exact MAP of log p(X) - lam ||X - Y||_1;
    * ``lg_est`` (Sigma = Var[g(z)] = w^2 s2 / c): b = w^2.
    """
    w, s2, lam = np.linspace(0.5, 2.0, 8), 0.25, 0.5
    model = _PPCA(w, s2)
    y = jnp.asarray([1.5, -0.2, 0.9, -2.5, 0.4, 3.0, -1.2, 0.1]).reshape(1, 2, 4, 1)
    bound = lam * (w**2 + s2 if method == "lg_neural" else w**2)
    want = np.clip(np.asarray(y).ravel(), -bound, bound)
    assert 2 < np.sum(want != np.asarray(y).ravel()) < 8  # both clipped and kept pixels
    cfg = _cfg(steps=1500, learning_rate=1e-2, samples=256, prior="l1", min_variance=1e-6)
    x = restore(method, model, y, jnp.ones_like(y), jax.random.key(4), cfg, lam=lam).x
    np.testing.assert_allclose(np.asarray(x).ravel(), want, atol=0.05)


class _LinearGaussianVAE(nnx.Module):
    """x = w * z + N(0, s2) per pixel with z ~ N(0, 1), and the exact posterior as encoder:
    q(z|x) = N(w x / c, s2 / c), c = w^2 + s2. Its ELBO is then log p(x) exactly, and the
    real Autoencoder.kl computes the KL term: closed form against N(0, I), or the one-sample
    estimate against a one-component mixture whose component is N(0, I)."""

    kl = Autoencoder.kl

    def __init__(self, w, s2, prior_kind="normal"):
        self.w, self.s2 = jnp.asarray(w).reshape(1, 2, 4, 1), s2
        self.variational, self.prior_kind = True, prior_kind
        if prior_kind == "mixture":
            self.prior = MixturePrior(1, 1, rngs=nnx.Rngs(0))
            self.prior.means[...] = jnp.zeros((1, 1))

    def encode(self, x):
        c = self.w**2 + self.s2
        return x * self.w / c, jnp.broadcast_to(jnp.log(self.s2 / c), x.shape)

    def __call__(self, x, *, key=None):
        mean, logvar = self.encode(x)
        z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, mean.shape)
        return AEOutput(z * self.w, mean, logvar, z)


@pytest.mark.parametrize("method", ["map", "gmvae_map"])
def test_map_converges_to_the_analytic_map_image_of_a_linear_gaussian_vae(method):
    """With an L2 reconstruction loss and KL weight b, the negative ELBO is b (-log p(x)) +
    const for the likelihood N(w z, b / 2), so p(x) = N(0, c) with c = w^2 + b / 2 per
    pixel. MAP with the L1 prior minimises b x^2 / (2c) + lam |x - y|, whose minimiser is
    x = clip(y, -lam c / b, lam c / b). GMVAE-MAP with a one-component mixture N(0, I) has
    the same objective (its KL is the one-sample estimate). Under jax.jit."""
    from jaxuad.config import TrainConfig

    w, b, lam = np.linspace(0.5, 2.0, 8), 0.5, 0.4
    model = _LinearGaussianVAE(w, b / 2, "mixture" if method == "gmvae_map" else "normal")
    y = jnp.asarray([1.5, -0.2, 0.9, -2.5, 0.4, 3.0, -1.2, 0.1]).reshape(1, 2, 4, 1)
    bound = lam * (w**2 + b / 2) / b
    want = np.clip(np.asarray(y).ravel(), -bound, bound)
    assert 2 < np.sum(want != np.asarray(y).ravel()) < 8  # both clipped and kept pixels
    cfg = _cfg(steps=3000, learning_rate=3e-3, prior="l1")
    tc = TrainConfig(recon_loss="l2", kl_weight=b)
    fn = jax.jit(lambda m, y, k: restore(method, m, y, jnp.ones_like(y), k, cfg, lam, tc).x)
    x = fn(model, y, jax.random.key(4))
    np.testing.assert_allclose(np.asarray(x).ravel(), want, atol=0.05)


class _LinearAnoGAN(nnx.Module):
    """G(z) = W z (an injective linear map from 3 latent values to 8 pixels) and
    discriminator features f(x) = V x, so the search's loss is convex in z with its minimum,
    0, at the code that made y."""

    def __init__(self):
        rng = np.random.default_rng(3)
        self.W = jnp.asarray(rng.standard_normal((8, 3)), jnp.float32)
        self.latent_shape = (3,)
        self.disc = _LinearFeatures(rng.standard_normal((8, 5)))

    def generate(self, z):
        return (z @ self.W.T).reshape(z.shape[0], 2, 4, 1)


class _LinearFeatures(nnx.Module):
    def __init__(self, v):
        self.V = jnp.asarray(v, jnp.float32)

    def features(self, x):
        return x.reshape(x.shape[0], -1) @ self.V


def test_anogan_search_recovers_the_code_of_a_linear_generator():
    model = _LinearAnoGAN()
    z_true = jnp.asarray([[0.7, -1.2, 0.3], [-0.4, 0.9, 1.5]])
    y = model.generate(z_true)
    cfg = _cfg(anogan_steps=2000, anogan_learning_rate=1e-2, anogan_feature_weight=0.3)
    fn = jax.jit(lambda m, y, k: restore("anogan", m, y, jnp.ones_like(y), k, cfg))
    out = fn(model, y, jax.random.key(0))
    np.testing.assert_allclose(np.asarray(out.x), np.asarray(y), atol=0.03)
    assert out.cost[-1] < 0.02 * out.cost[0]  # the search did the work, not the start


def test_updates_stay_inside_the_mask():
    model = _LinearVAE()
    y = jax.random.normal(jax.random.key(1), (2, 2, 4, 1))
    mask = jnp.zeros_like(y).at[:, :, :2].set(1.0)
    x = restore("lg_est", model, y, mask, jax.random.key(2), _cfg(steps=5), lam=0.1).x
    np.testing.assert_array_equal(np.asarray(x)[:, :, 2:], np.asarray(y)[:, :, 2:])
    assert not np.array_equal(np.asarray(x)[:, :, :2], np.asarray(y)[:, :, :2])


def test_same_key_same_restoration_and_no_recompile():
    model = _LinearVAE()
    y = jax.random.normal(jax.random.key(1), (2, 2, 4, 1))
    mask = jnp.ones_like(y)

    @jax.jit
    @chex.assert_max_traces(n=1)  # a new lambda or key: the same compiled function
    def fn(model, y, key, lam):
        return restore("lg_est", model, y, mask, key, _cfg(steps=10), lam=lam).x

    a = fn(model, y, jax.random.key(5), 0.3)
    b = fn(model, y, jax.random.key(5), 0.7)  # a new lambda: same compiled function
    c = fn(model, y, jax.random.key(5), 0.3)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(c))
    assert not np.array_equal(np.asarray(a), np.asarray(b))


class _Recon(NamedTuple):
    recon: jax.Array


class _LinearAE(_LinearVAE):
    def __call__(self, x):
        return _Recon(self.decode(self.encode(x)[0]))


def test_lambda_comes_from_the_config_unless_given_and_is_never_made_up():
    model = _LinearVAE()
    y = jax.random.normal(jax.random.key(1), (2, 2, 4, 1))
    mask, key = jnp.ones_like(y), jax.random.key(2)
    from_cfg = restore("lg_est", model, y, mask, key, _cfg(steps=5, lam=30.0)).x
    given = restore("lg_est", model, y, mask, key, _cfg(steps=5), lam=30.0).x
    np.testing.assert_array_equal(np.asarray(from_cfg), np.asarray(given))
    other = restore("lg_est", model, y, mask, key, _cfg(steps=5, lam=30.0), lam=0.0).x
    assert not np.array_equal(np.asarray(other), np.asarray(given))  # lam= wins
    with pytest.raises(ConfigError, match="lg_est: no lambda"):
        restore("lg_est", model, y, mask, key, _cfg(steps=5))
    with pytest.raises(ConfigError, match="pass train_cfg="):
        restore("map", model, y, mask, key, _cfg(steps=5), lam=1.0)


def test_reconstruction_is_a_method_of_restore():
    model = _LinearAE()
    y = jax.random.normal(jax.random.key(1), (2, 2, 4, 1))
    x = restore("reconstruction", model, y, jnp.ones_like(y), jax.random.key(0), _cfg()).x
    np.testing.assert_allclose(np.asarray(x), np.asarray(model(y).recon))


def test_lg_under_jit_is_restore_with_the_same_settings():
    model = _LinearVAE()
    y = jax.random.normal(jax.random.key(1), (2, 2, 4, 1))
    mask, key = jnp.ones_like(y), jax.random.key(2)
    fn = jax.jit(lg, static_argnames=("prior", "steps", "variance", "samples"))
    got = fn(model, y, mask, key, prior="l1", lam=0.3, steps=6, variance="est", samples=8)
    cfg = RestoreConfig(prior="l1", steps=6, learning_rate=5e-3, samples=8)
    want = restore("lg_est", model, y, mask, key, cfg, lam=0.3).x
    chex.assert_trees_all_close(got, want, rtol=1e-6, atol=1e-6)
    assert not np.allclose(np.asarray(got), np.asarray(y))  # it did restore


def test_pick_lambda_on_a_synthetic_ssim_curve():
    grid = np.array([0.1, 0.5, 1.0, 2.0, 5.0])
    curve = np.array([0.80, 0.90, 0.949, 0.951, 0.99])
    assert pick_lambda(grid, curve, 0.95) == (2.0, True)
    assert pick_lambda(grid[::-1], curve[::-1], 0.95) == (2.0, True)  # any grid order
    assert pick_lambda(grid, curve, 0.999) == (5.0, False)


def test_ssim_matches_scikit_image():
    """Against scikit-image's structural_similarity (Gaussian weights, sigma 1.5, population
    covariance), the SSIM of Wang et al. as most papers compute it; with a mask, the mean of
    its full SSIM map over the (cropped) positions inside the mask."""
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(0)
    a = rng.random((3, 24, 30)).astype(np.float32)
    b = (a + 0.2 * rng.standard_normal(a.shape)).astype(np.float32)
    dr = np.array([1.0, 2.0, 1.5], np.float32)
    kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    got = ssim(jnp.asarray(a[..., None]), jnp.asarray(b[..., None]), jnp.asarray(dr))
    want = [structural_similarity(a[i], b[i], data_range=dr[i], **kw) for i in range(3)]
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-5)
    same = ssim(jnp.asarray(a[..., None]), jnp.asarray(a[..., None]), jnp.asarray(dr))
    np.testing.assert_allclose(np.asarray(same), 1.0, atol=1e-5)

    mask = np.zeros(a.shape, bool)
    mask[:, 8:20, 6:18] = True
    mask[1, :, :] = False  # no brain: NaN, not a number from the background
    mask[1, 0, 0] = True  # inside the cropped border only: still no position counts
    got = ssim(jnp.asarray(a[..., None]), jnp.asarray(b[..., None]), jnp.asarray(dr),
               mask=jnp.asarray(mask[..., None]))  # fmt: skip
    for i in (0, 2):
        _, full = structural_similarity(a[i], b[i], data_range=dr[i], full=True, **kw)
        inner = (slice(5, -5), slice(5, -5))  # where the 11x11 window fits
        np.testing.assert_allclose(float(got[i]), full[inner][mask[i][inner]].mean(), rtol=1e-4)
    assert np.isnan(float(got[1]))


# ---------------------------------------------------------------------------------------
# On a trained smoke model and the phantom.


@pytest.fixture(scope="module")
def chen_run(smoke_images, tmp_path_factory):
    """A smoke vae_chen with a joint variance network, trained briefly on the phantom."""
    from jaxuad.train import train
    from tests.conftest import smoke_config

    cfg = smoke_config("vae_chen", modality="FLAIR")
    cfg = dataclasses.replace(
        cfg,
        data=dataclasses.replace(cfg.data, normalization="minmax"),
        train=dataclasses.replace(cfg.train, epochs=4, learning_rate=1e-3),
    )
    workdir = tmp_path_factory.mktemp("chen")
    train(cfg, workdir, images=smoke_images, progress=False)
    return workdir


def test_calibrate_then_restore_the_lesion_cohort(chen_run, phantom_dir, tmp_path):
    r = subprocess.run(
        [_script("jaxuad-restore"), "--calibrate", f"--workdir={chen_run}",
         f"--data={phantom_dir / 'healthy'}", "--method=lg_neural", "--prior=tv",
         "--set", "restore.lam_grid=0.01,1,100", "--no-progress"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    cal = json.loads((chen_run / "calibration.json").read_text())["lg_neural/tv"]
    assert cal["grid"] == [0.01, 1.0, 100.0] and len(cal["ssim"]) == 3
    assert cal["ssim_over"] == "brain"
    assert cal["ssim"][2] >= cal["ssim"][0]  # a stronger pull to Y keeps images closer
    assert (chen_run / "ssim_lambda_lg_neural_tv.png").is_file()
    import jaxuad

    run = jaxuad.load_run(chen_run)  # the run handle sees the same calibration
    assert run.lam("lg_neural") == cal["lam"] and run.lam("lg_est") is None
    assert run.config.model.name == "vae_chen" and run.step > 0
    y = jnp.zeros((2, 32, 32, 1))
    assert run.model()(y, key=jax.random.key(0)).recon.shape == y.shape
    out = tmp_path / "pred"
    r = subprocess.run(
        [_script("jaxuad-restore"), f"--workdir={chen_run}", f"--data={phantom_dir / 'lesion'}",
         f"--out={out}", "--set", "restore.method=lg_neural", "--prior=tv", "--no-progress"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "restore.json").read_text())
    assert summary["method"] == "lg_neural"  # --set restore.method works like --method
    assert summary["lam"] == cal["lam"] and summary["iterations"] == 20
    assert summary["seconds_per_iteration_per_image"] > 0
    assert len(list(out.glob("*_residual.nii.gz"))) == 2

    # The whole padded frame, as calibration averaged before issue 27: the background, equal
    # in both images, lifts every SSIM.
    from jaxuad.restore import calibrate

    frame = calibrate(chen_run, phantom_dir / "healthy", method="lg_neural", progress=False,
                      restore_overrides={"lam_grid": (0.01, 1.0, 100.0), "prior": "tv",
                                         "ssim_region": "frame"})  # fmt: skip
    assert frame.ssim_over == "frame" and frame.method == "lg_neural"
    assert all(f > b for f, b in zip(frame.ssim, cal["ssim"], strict=True))


def test_restoration_lowers_healthy_residuals_and_keeps_lesions(chen_run, phantom_dir, tmp_path):
    """On the lesion phantom, LG restoration (X0 = Y, pulled towards the model's healthy
    anatomy and held to Y by the TV prior) leaves a much smaller residual than
    reconstruction in healthy tissue, while lesion voxels keep a residual over twice the
    healthy one: the lesion-to-healthy contrast of the residual map grows. (Measured with
    this 4-epoch smoke model: healthy 0.12-0.17 against 0.31-0.35, contrast 2.9-3.0
    against 2.0-2.1.)"""
    import nibabel as nib

    from jaxuad.restore import restore_cohort

    data = phantom_dir / "lesion"
    common = dict(data=data, seed=0, progress=False)
    restore_cohort(chen_run, out=tmp_path / "rec", method="reconstruction", **common)
    overrides = {"lam": 100.0, "steps": 200, "learning_rate": 5e-3}
    restore_cohort(
        chen_run, out=tmp_path / "lg", method="lg_neural", restore_overrides=overrides, **common
    )
    load = lambda p: np.asarray(nib.load(p).get_fdata())
    healthy, lesion = {"rec": [], "lg": []}, {"rec": [], "lg": []}
    for mask_file in sorted(data.glob("*_lesion.nii.gz")):
        sid = mask_file.name.split("_")[0]
        les = load(mask_file) > 0
        brain = load(tmp_path / "rec" / f"{sid}_brainmask.nii.gz") > 0
        residual = {name: load(tmp_path / name / f"{sid}_residual.nii.gz") for name in healthy}
        done = residual["rec"].any(axis=(0, 1))  # the axial slices the run processed
        for name, res in residual.items():
            healthy[name].append(res[brain & ~les & done].mean())
            lesion[name].append(res[les & done].mean())
    assert np.all(np.array(lesion["lg"]) > 0), "no lesion voxel in a processed slice"
    rows = zip(healthy["rec"], healthy["lg"], lesion["rec"], lesion["lg"], strict=True)
    for h_rec, h_lg, l_rec, l_lg in rows:
        assert h_lg < 0.6 * h_rec, (h_lg, h_rec)
        assert l_lg > 2 * h_lg, (l_lg, h_lg)
        assert l_lg / h_lg > 1.2 * l_rec / h_rec, (l_lg / h_lg, l_rec / h_rec)


def test_restore_without_lambda_or_with_a_wrong_method_fails_cleanly(
    trained_run, phantom_dir, tmp_path
):
    for args, msg in [
        (["--method=lg_est"], "no calibrated lambda"),
        (["--method=lg_neural", "--lam=1"], "variance network"),
        (["--method=gmvae_map", "--lam=1"], "gmvae"),
    ]:
        r = subprocess.run(
            [_script("jaxuad-restore"), f"--workdir={trained_run}",
             f"--data={phantom_dir / 'lesion'}", f"--out={tmp_path / 'o'}", *args],
            capture_output=True, text=True,
        )  # fmt: skip
        assert r.returncode == 2 and msg in r.stderr, r.stderr
        assert not (tmp_path / "o").exists()


def test_mahalanobis_is_the_deviation_from_the_decoder_samples_spread():
    """For g(z) = W z, z ~ N(A y, s^2 I): the samples' mean is W A y and their per-pixel
    variance s^2 sum_k W_kj^2; the method's residual y - x is (y - mean) / sd, exactly
    from its own draws and, with many draws, close to the closed form."""
    from jaxuad.models.variance import decoder_samples

    model = _LinearVAE(logvar=-1.0)
    y = jax.random.normal(jax.random.key(3), (2, 2, 4, 1))
    mask = jnp.ones_like(y).at[:, 0, 0].set(0.0)
    key = jax.random.key(4)
    cfg = _cfg(samples=4096)
    x = restore("mahalanobis", model, y, mask, key, cfg).x
    g = decoder_samples(model, y, key, cfg.samples)
    want = (y - g.mean(0)) / jnp.sqrt(jnp.maximum(g.var(0, ddof=1), cfg.min_variance))
    np.testing.assert_allclose(np.asarray(y - x)[mask > 0], np.asarray(want)[mask > 0],
                               rtol=1e-4, atol=1e-5)  # fmt: skip
    np.testing.assert_array_equal(np.asarray(x)[mask == 0], np.asarray(y)[mask == 0])
    w, a = np.asarray(model.w[...]), np.asarray(model.a[...])
    mean = (np.asarray(y).reshape(2, -1) @ a @ w).reshape(y.shape)
    sd = np.sqrt(np.exp(-1.0) * np.square(w).sum(0)).reshape(1, 2, 4, 1)
    np.testing.assert_allclose(np.asarray(want), (np.asarray(y) - mean) / sd, rtol=0.05, atol=0.05)
