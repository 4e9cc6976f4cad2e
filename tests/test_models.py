import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxuad import models
from jaxuad.models import cpu_conv
from jaxuad.models.cpu_conv import conv_im2col, conv_transpose_via_phases
from jaxuad.models.layers import Conv, DownConv, UpConv
from jaxuad.train import build_model
from tests.conftest import smoke_config

MODELS = ["dae", "sae", "dvae", "svae"]


@pytest.mark.parametrize("impl", ["xla", "cpu"])
@pytest.mark.parametrize("k", [3, 4, 5])
def test_upconv_equals_flax_conv_transpose(k, impl):
    ref = nnx.ConvTranspose(3, 5, (k, k), strides=(2, 2), padding="SAME", rngs=nnx.Rngs(0))
    up = UpConv(3, 5, k, 2, rngs=nnx.Rngs(1), conv_impl=impl)
    up.kernel[...] = ref.kernel[...]
    up.bias[...] = jax.random.normal(jax.random.key(2), (5,))
    ref.bias[...] = up.bias[...]
    x = jax.random.normal(jax.random.key(3), (2, 7, 9, 3))
    np.testing.assert_allclose(jax.jit(up)(x), jax.jit(ref)(x), atol=1e-5)

    def grad(f, w):
        return jax.grad(lambda w: jnp.sum(jnp.sin(f(x, w))))(w)

    w = ref.kernel[...]
    via_lax = lambda x, w: jax.lax.conv_transpose(
        x, w, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    np.testing.assert_allclose(
        grad(lambda x, w: conv_transpose_via_phases(x, w, 2), w), grad(via_lax, w), atol=1e-4
    )


@pytest.mark.parametrize("impl", ["xla", "cpu"])
@pytest.mark.parametrize("k", [3, 4, 5])
@pytest.mark.parametrize("size", [8, 12])  # 4x4 / 6x6 outputs: the im2col and the lax path
def test_downconv_equals_flax_strided_conv(k, size, impl):
    ref = nnx.Conv(3, 5, (k, k), strides=(2, 2), padding="SAME", rngs=nnx.Rngs(0))
    down = DownConv(3, 5, k, 2, rngs=nnx.Rngs(1), conv_impl=impl)
    down.kernel[...] = ref.kernel[...]
    ref.bias[...] = down.bias[...] = jax.random.normal(jax.random.key(2), (5,))
    x = jax.random.normal(jax.random.key(3), (2, size, size, 3))
    np.testing.assert_allclose(jax.jit(down)(x), jax.jit(ref)(x), atol=1e-5)

    via_lax = lambda x, w: jax.lax.conv_general_dilated(
        x, w, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    loss = lambda f: lambda x, w: jnp.sum(jnp.sin(f(x, w)))
    got = jax.grad(loss(lambda x, w: conv_im2col(x, w, 2)), argnums=(0, 1))(x, ref.kernel[...])
    want = jax.grad(loss(via_lax), argnums=(0, 1))(x, ref.kernel[...])
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, atol=1e-4)


_DN = ("NHWC", "HWIO", "NHWC")


def _assert_conv_equals_lax(conv, x, w, stride, padding):
    """``conv(x, w)`` against ``lax.conv_general_dilated``: value and both gradients."""
    ref = lambda x, w: jax.lax.conv_general_dilated(
        x, w, (stride,) * 2, padding, dimension_numbers=_DN
    )

    def value_and_grads(f):
        return f(x, w), *jax.grad(lambda x, w: jnp.sum(jnp.sin(f(x, w))), (0, 1))(x, w)

    for got, want in zip(value_and_grads(conv), value_and_grads(ref), strict=True):
        np.testing.assert_allclose(got, want, atol=2e-4)


@pytest.mark.parametrize("k", [1, 3, 4, 5])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("padding", ["SAME", "VALID", ((2, 1), (2, 1))])
def test_conv2d_values_and_gradients_equal_lax(k, stride, padding):
    """The layers' convolution (own input gradient, fast inside ``lax.scan``) against
    ``lax.conv_general_dilated``, odd and even sizes, both gradients."""
    x = jax.random.normal(jax.random.key(0), (2, 9, 8, 3))
    w = jax.random.normal(jax.random.key(1), (k, k, 3, 4))
    mine = lambda x, w: cpu_conv.conv2d(x, w, stride, padding)
    _assert_conv_equals_lax(mine, x, w, stride, padding)


@pytest.mark.parametrize("stride", [1, 2])
def test_conv2d_on_tiny_maps_takes_im2col_and_equals_lax(stride):
    """At most IM2COL_MAX_OUTPUT[stride] output pixels: the matrix-product route."""
    from jaxuad.models.cpu_conv import IM2COL_MAX_OUTPUT, conv2d

    x = jax.random.normal(jax.random.key(0), (2, 2 * stride, 2 * stride, 5))
    w = jax.random.normal(jax.random.key(1), (3, 3, 5, 4))
    pads = ((1, 1), (0, 2))
    assert 2 * 2 <= IM2COL_MAX_OUTPUT[stride]
    mine = lambda x, w: conv2d(x, w, stride, pads)
    assert "dot_general" in str(jax.make_jaxpr(mine)(x, w))
    _assert_conv_equals_lax(mine, x, w, stride, pads)


@pytest.mark.parametrize("k", [3, 4, 5])
@pytest.mark.parametrize("strided_dw", [True, False])
def test_conv_transpose_gradients_by_either_route_equal_lax(k, strided_dw, monkeypatch):
    """The transposed convolution's own backward pass: the input gradient as a strided
    convolution, the weight gradient as that convolution's or as the phase conv's
    (``STRIDED_DW_MAX_INPUT`` forced either way), odd and even sizes, against lax."""
    monkeypatch.setattr(cpu_conv, "STRIDED_DW_MAX_INPUT", 10**9 if strided_dw else 0)
    x = jax.random.normal(jax.random.key(0), (2, 7, 8, 3))
    w = jax.random.normal(jax.random.key(1), (k, k, 3, 4))
    via_lax = lambda x, w: jax.lax.conv_transpose(x, w, (2, 2), "SAME", dimension_numbers=_DN)
    loss = lambda f: lambda x, w: jnp.sum(jnp.sin(f(x, w)))
    mine = lambda x, w: conv_transpose_via_phases(x, w, 2)
    got = jax.grad(loss(mine), (0, 1))(x, w)
    for g, want in zip(got, jax.grad(loss(via_lax), (0, 1))(x, w), strict=True):
        np.testing.assert_allclose(g, want, atol=1e-4)
    # The input gradient is a stride-2 convolution, never an input-dilated one.
    jaxpr = str(jax.make_jaxpr(jax.grad(loss(mine)))(x, w))
    assert "lhs_dilation=(2, 2)" not in jaxpr and "window_strides=(2, 2)" in jaxpr


@pytest.mark.parametrize("k", [3, 4, 5])
def test_strided_conv_input_gradient_by_phases_equals_lax(k, monkeypatch):
    """From ``PHASE_DX_MIN_OUTPUT`` output pixels (forced to 1 here) a SAME strided conv's
    input gradient runs as a phase-decomposed transposed conv, no input dilation."""
    monkeypatch.setattr(cpu_conv, "PHASE_DX_MIN_OUTPUT", 1)
    x = jax.random.normal(jax.random.key(0), (2, 10, 12, 3))
    w = jax.random.normal(jax.random.key(1), (k, k, 3, 4))
    mine = lambda x, w: cpu_conv.conv2d(x, w, 2, "SAME")
    _assert_conv_equals_lax(mine, x, w, 2, "SAME")
    dx = jax.grad(lambda x: jnp.sum(jnp.sin(mine(x, w))))
    assert "lhs_dilation=(2, 2)" not in str(jax.make_jaxpr(dx)(x))
    # Odd sizes are not a SAME transposed conv's output: the general route, still exact.
    _assert_conv_equals_lax(mine, x[:, :9], w, 2, "SAME")


@pytest.mark.parametrize(
    "kw", [{"padding": "SAME"}, {"padding": "VALID"}, {"padding": "SAME", "strides": 2}]
)
def test_conv_equals_flax_conv(kw):
    """``Conv`` on the CPU kernels (``conv2d`` and ``add_bias``, whose bias gradient is a
    matrix-vector product) against ``nnx.Conv``: the same parameters from the same seed,
    and the same value and gradients (kernel, bias, input); a stride-2 one runs as
    ``nnx.Conv``."""
    mine = Conv(3, 4, (3, 3), rngs=nnx.Rngs(0), conv_impl="cpu", **kw)
    ref = nnx.Conv(3, 4, (3, 3), rngs=nnx.Rngs(0), **kw)
    params = [jax.tree.leaves(nnx.state(m)) for m in (mine, ref)]
    for a, b in zip(*params, strict=True):
        np.testing.assert_array_equal(a, b)
    mine.bias[...] = ref.bias[...] = jax.random.normal(jax.random.key(2), (4,))
    x = jax.random.normal(jax.random.key(3), (2, 9, 8, 3))

    def value_and_grads(m):
        graphdef, params = nnx.split(m)
        f = lambda p, x: jnp.sin(nnx.merge(graphdef, p)(x))
        return f(params, x), jax.grad(lambda p, x: f(p, x).sum(), (0, 1))(params, x)

    results = [jax.tree.leaves(value_and_grads(m)) for m in (mine, ref)]
    for got, want in zip(*results, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-4)


@pytest.mark.parametrize("k", [3, 4, 5])
@pytest.mark.parametrize("chunk_bytes", [1, 1 << 30], ids=["chunked", "whole"])
def test_conv_to_one_channel_equals_lax(k, chunk_bytes, monkeypatch):
    """From ``ONE_CHANNEL_MIN_OUTPUT`` output pixels (forced to 1 here) a stride-1 conv to
    one channel runs as taps-then-shifted-sum, by chunks of images or all at once: value
    and both gradients against lax, odd and even kernels, uneven pads, non-square maps,
    batches that do (6) and do not (7: chunks of one) split evenly."""
    monkeypatch.setattr(cpu_conv, "ONE_CHANNEL_MIN_OUTPUT", 1)
    monkeypatch.setattr(cpu_conv, "ONE_CHANNEL_CHUNK_BYTES", chunk_bytes)
    w = jax.random.normal(jax.random.key(1), (k, k, 3, 1))
    for batch, padding in ((6, "SAME"), (7, ((2, 0), (1, 3))), (1, "VALID")):
        x = jax.random.normal(jax.random.key(0), (batch, 9, 12, 3))
        mine = lambda x, w, p=padding: cpu_conv.conv2d(x, w, 1, p)
        assert "dot_general" in str(jax.make_jaxpr(mine)(x, w))  # not lax's convolution
        _assert_conv_equals_lax(mine, x, w, 1, padding)
    # at least 2 images per chunk, unless the batch has no such divisor
    assert cpu_conv._chunk_size(64, 4 * chunk_bytes) == 2
    assert cpu_conv._chunk_size(7, 4 * chunk_bytes) == 1


@pytest.mark.parametrize("k", [2, 3, 4, 5])
@pytest.mark.parametrize("cin", [1, 3])
def test_narrow_convs_by_taps_equal_lax(k, cin, monkeypatch):
    """From ``NARROW_MIN_OUTPUT`` output pixels (forced to 1 here) a stride-1 conv with at
    most ``NARROW_MAX_CHANNELS`` in and out runs its forward pass as the sum over its taps:
    value and both gradients against lax, odd and even kernels, uneven pads, non-square
    and odd-sized maps; wider convs, strided ones and smaller maps stay on lax's."""
    monkeypatch.setattr(cpu_conv, "NARROW_MIN_OUTPUT", 20)
    calls = []
    by_taps = cpu_conv.conv_by_taps
    monkeypatch.setattr(
        cpu_conv, "conv_by_taps", lambda x, w, p: calls.append(x.shape) or by_taps(x, w, p)
    )
    uneven = ((k - 1, 0), (1, k - 2))
    for shape, cout, padding, stride, used in (
        ((2, 10, 12, cin), 4, "SAME", 1, True),
        ((1, 9, 7, cin), 4, uneven, 1, True),
        ((2, 10, 12, cin), 9, "SAME", 1, False),  # wider than NARROW_MAX_CHANNELS
        ((2, 10, 12, cin), 4, "SAME", 2, False),  # strided
        ((2, 4, 4, cin), 4, "SAME", 1, False),  # 16 < 20 output pixels
    ):
        x = jax.random.normal(jax.random.key(0), shape)
        w = jax.random.normal(jax.random.key(1), (k, k, cin, cout))
        calls.clear()
        mine = lambda x, w, p=padding, s=stride: cpu_conv.conv2d(x, w, s, p)
        _assert_conv_equals_lax(mine, x, w, stride, padding)
        # forward passes only (an input gradient would come with cout channels)
        assert bool(calls) == used and all(c == shape for c in calls), (shape, cout, stride)


@pytest.mark.parametrize("name", MODELS)
def test_shapes(name):
    cfg = smoke_config(name)
    model = models.create(cfg.model, 32, rngs=nnx.Rngs(0))
    out = jax.jit(lambda x: model(x, key=jax.random.key(0)))(jnp.ones((2, 32, 32, 1)))
    assert out.recon.shape == (2, 32, 32, 1)
    dense = name.startswith("d")
    assert out.mean.shape == ((2, 16) if dense else (2, 2, 2, 4))
    assert (out.logvar is not None) == name.endswith("vae")


def test_paper_bottlenecks_at_128():
    from jaxuad.config import load_config

    x = jax.ShapeDtypeStruct((1, 128, 128, 1), jnp.float32)
    for name, variant, shape in [
        ("dae", "default", (1, 512)),
        ("sae", "default", (1, 8, 8, 64)),
        ("sae", "sae1", (1, 4, 4, 64)),
    ]:
        graphdef, params = build_model(load_config(name, variant), 0, abstract=True)
        out = jax.eval_shape(lambda p, x, g=graphdef: nnx.merge(g, p)(x), params, x)
        assert out.mean.shape == shape


def test_encoder_decoder_same_size_across_variants():
    def count(tree):
        return sum(x.size for x in jax.tree.leaves(tree))

    sizes = set()
    for name in MODELS:
        _, params = build_model(smoke_config(name), 0)
        sizes.add(count(params["encoder"]) + count(params["decoder"]))
    assert len(sizes) == 1


def _conv_impls(model) -> set[str]:
    return {m.conv_impl for _, m in nnx.iter_modules(model) if hasattr(m, "conv_impl")}


@pytest.mark.parametrize("backend, want", [("gpu", "xla"), ("tpu", "xla"), ("cpu", "cpu")])
def test_auto_conv_impl_follows_the_backend(backend, want, monkeypatch):
    """``model.conv_impl=auto`` on an accelerator gives every layer the plain ``lax``
    convolutions, and a traced forward and backward pass holds none of the CPU kernels
    (their custom VJPs, im2col products, phase rearrangements); an explicit setting wins."""
    cfg = dataclasses.replace(smoke_config("vae_chen").model, variance_net=True)
    monkeypatch.setattr(jax, "default_backend", lambda: backend)
    model = models.create(cfg, 32, rngs=nnx.Rngs(0))
    assert _conv_impls(model) == {want}
    graphdef, params = nnx.split(model)

    def loss(p, x):
        out = nnx.merge(graphdef, p)(x, key=jax.random.key(0))
        return jnp.sum(out.recon**2)

    jaxpr = str(jax.make_jaxpr(jax.grad(loss))(params, jnp.ones((2, 32, 32, 1))))
    assert ("custom_vjp_call" in jaxpr) == (want == "cpu")
    assert "conv_general_dilated" in jaxpr
    forced = dataclasses.replace(cfg, conv_impl="cpu" if want == "xla" else "xla")
    assert _conv_impls(models.create(forced, 32, rngs=nnx.Rngs(0))) == {forced.conv_impl}


@pytest.mark.parametrize("name", ["svae", "vae_chen", "anogan"])
def test_cpu_kernels_equal_plain_convolutions_in_values_and_gradients(name):
    """One model, its parameters from one seed, run once with ``conv_impl=cpu`` and once
    with ``xla``: the same outputs and parameter gradients (float32 sums in another order)."""
    base = smoke_config(name).model
    if name == "vae_chen":
        base = dataclasses.replace(base, variance_net=True)
    runs = []
    for impl in ("cpu", "xla"):
        model = models.create(dataclasses.replace(base, conv_impl=impl), 32, rngs=nnx.Rngs(0))
        graphdef, params = nnx.split(model)
        if name == "anogan":
            x = jax.random.normal(jax.random.key(1), (2, base.z_dim))
            f = lambda p, x, g=graphdef: nnx.merge(g, p).generate(x)
        else:
            x = jax.random.uniform(jax.random.key(1), (2, 32, 32, 1))
            f = lambda p, x, g=graphdef: nnx.merge(g, p)(x, key=jax.random.key(2)).recon
        loss = lambda p, x, f=f: jnp.sum(jnp.sin(3 * f(p, x)))
        value, grads = jax.value_and_grad(loss)(params, x)
        runs.append((f(params, x), value, grads))
    chex.assert_trees_all_close(runs[0], runs[1], atol=2e-4, rtol=2e-4)
