"""The compiled JAX post-processing against scipy.ndimage, voxel for voxel."""

import collections
import dataclasses
import functools
import itertools

import jax
import numpy as np
import pytest

from benchmarks.postprocess import runs
from jaxuad import postprocess as P
from jaxuad.config import ConfigError, EvaluateConfig
from jaxuad.postprocess import components as K
from jaxuad.postprocess import filters
from jaxuad.postprocess import reference as R

SHAPE = (9, 11, 8)


@functools.cache
def jitted(name, *static):
    module = filters if name in ("median_filter", "binary_erosion") else K
    return jax.jit(lambda x: getattr(module, name)(x, *static))


def volumes(seed, p):
    """Random masks, plus the edge cases: empty, single voxel, full, border-touching."""
    rng = np.random.default_rng(seed)
    single = np.zeros(SHAPE, bool)
    single[4, 5, 3] = True
    border = np.zeros(SHAPE, bool)
    border[0, :, 0] = border[-1, -1, :] = border[:, 0, -1] = True
    return {
        "random": rng.uniform(size=SHAPE) < p,
        "empty": np.zeros(SHAPE, bool),
        "single": single,
        "full": np.ones(SHAPE, bool),
        "border": border,
    }


@pytest.mark.parametrize("size", [3, 5, (3, 1, 5)])
def test_median_filter_equals_scipy_including_faces(size):
    rng = np.random.default_rng(sum(np.atleast_1d(size)))
    cases = {
        "normal": rng.normal(size=SHAPE),
        "ties": rng.integers(0, 3, SHAPE) * 0.5,  # many equal values
        "signed zeros and negatives": np.where(
            rng.uniform(size=SHAPE) < 0.5, -0.0, -rng.uniform(size=SHAPE)
        ),
        "all ones": np.ones(SHAPE),
        "single voxel": volumes(0, 0.5)["single"] * 7.0,
        "thin": rng.normal(size=(1, 3, 12)),  # thinner than the window: reflected twice
    }
    for name, x in cases.items():
        x = x.astype(np.float32)
        got = np.asarray(jitted("median_filter", size)(x))
        np.testing.assert_array_equal(got, R.median_filter(x, size), err_msg=name)


def test_median_filter_identity_and_even_sizes():
    x = np.random.default_rng(0).normal(size=SHAPE).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(filters.median_filter(x, 1)), x)
    with pytest.raises(ValueError, match="odd"):
        filters.median_filter(x, 4)


@pytest.mark.parametrize("iterations", [0, 1, 3])
def test_erosion_equals_scipy(iterations):
    for name, m in volumes(iterations, 0.8).items():
        got = np.asarray(jitted("binary_erosion", iterations)(m))
        np.testing.assert_array_equal(got, R.binary_erosion(m, iterations), err_msg=name)


# Connected-component kernels: () is the dense sweep alone; TIERS puts masks of up to 4,
# 48 or 396 runs (SHAPE holds at most 9 * 11 * 4 = 396) on the run kernel, so every mask
# takes one of its tiers.
TIERS = (4, 48, 396)
KERNELS = pytest.mark.parametrize("caps", [(), TIERS], ids=["dense", "runs"])


@KERNELS
@pytest.mark.parametrize("connectivity", [6, 26])
@pytest.mark.parametrize("p", [0.25, 0.55])
def test_labels_equal_scipy(connectivity, p, caps):
    """Same partition and the same numbering (raster order of first voxels)."""
    for seed in range(3):
        for name, m in volumes(seed, p).items():
            labels, n = jitted("label", connectivity, caps)(m)
            want, n_want = R.label(m, connectivity)
            assert int(n) == n_want, name
            np.testing.assert_array_equal(np.asarray(labels), want, err_msg=name)


@pytest.mark.parametrize("connectivity", [6, 26])
@pytest.mark.parametrize("shape", [(3, 4, 32), (2, 3, 33), (3, 2, 70), (1, 1, 1), (4, 1, 5)])
def test_run_kernel_across_word_boundaries(shape, connectivity):
    """Lines of exactly one word, just over one, several, a single voxel, one column: runs
    that cross words, start or end on a word's first or last bit."""
    rng = np.random.default_rng(7)
    caps = (K.max_runs(shape),)
    for p in (0.3, 0.6, 0.9, 1.0):
        m = rng.uniform(size=shape) < p
        labels, n = jitted("label", connectivity, caps)(m)
        want, n_want = R.label(m, connectivity)
        assert int(n) == n_want
        np.testing.assert_array_equal(np.asarray(labels), want)


@KERNELS
@pytest.mark.parametrize("connectivity", [6, 26])
def test_label_converges_on_a_long_snake(caps, connectivity):
    """One component that winds through the whole volume: many sweeps without jumping."""
    m = np.zeros((5, 16, 16), bool)
    m[:, ::3, :] = True
    for i in range(1, 16, 3):  # connect alternate ends of the rows
        m[:, i : i + 2, 0 if i % 6 == 4 else -1] = True
    labels, n = jitted("label", connectivity, caps and (K.max_runs(m.shape),))(m)
    assert int(n) == 1 and np.array_equal(np.asarray(labels) > 0, m)


def test_blocks_join_exactly_the_26_neighbours():
    """The 2x2x2 block kernel (the dense path for 26-connectivity) on every mask of two
    voxels in a 3x4x5 volume (odd and even sides, so blocks are cut by the faces): one
    component exactly when the two are 26-neighbours, numbered as SciPy numbers them."""
    shape = (3, 4, 5)
    pairs = [(a, b) for a in range(60) for b in range(a + 1, 60)]
    masks = np.zeros((len(pairs), 60), bool)
    for i, pair in enumerate(pairs):
        masks[i, list(pair)] = True
    masks = masks.reshape(len(pairs), *shape)
    labels, n = jitted("label", 26, ())(masks)
    for i, m in enumerate(masks):
        want, n_want = R.label(m, 26)
        assert int(n[i]) == n_want
        np.testing.assert_array_equal(np.asarray(labels[i]), want)


def through_each_direction(size=8):
    """For each of the 26 directions d between 2x2x2 blocks: voxel a on the side of block
    (1, 1, 1) that faces d, its neighbour b = a + d in the block beyond, and a shortest
    path from b to voxel (0, 0, 0) that stays off a's neighbourhood. a's block is joined to
    b's alone and the component's first voxel lies beyond b, so a's block gets its label
    only by reading across d."""
    moves = [d for d in itertools.product((-1, 0, 1), repeat=3) if d != (0, 0, 0)]
    masks = np.zeros((len(moves), size, size, size), bool)
    for m, d in zip(masks, moves, strict=True):
        a = tuple(2 + (e > 0) for e in d)
        b = tuple(x + e for x, e in zip(a, d, strict=True))
        before, todo = {b: None}, collections.deque([b])
        while (0, 0, 0) not in before:  # breadth first, around a
            v = todo.popleft()
            for e in moves:
                w = tuple(x + y for x, y in zip(v, e, strict=True))
                near_a = max(abs(x - y) for x, y in zip(w, a, strict=True)) <= 1
                if w not in before and min(w) >= 0 and max(w) < size and not near_a:
                    before[w] = v
                    todo.append(w)
        m[a] = True
        v = (0, 0, 0)
        while v is not None:
            m[v] = True
            v = before[v]
    return masks


def test_block_labels_cross_every_direction():
    """The block kernel reads its neighbours in all 26 directions (dropping any one of
    them from ``components._DIRECTIONS`` fails this)."""
    masks = through_each_direction()
    labels, n = jitted("label", 26, ())(masks)
    for i, m in enumerate(masks):
        want, n_want = R.label(m, 26)
        assert int(n[i]) == n_want == 1
        np.testing.assert_array_equal(np.asarray(labels[i]), want)


@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 3, 5), (6, 7, 4), (13, 2, 9), (1, 17, 1)])
def test_dense_kernels_on_odd_and_thin_volumes(shape):
    rng = np.random.default_rng(11)
    for p in (0.2, 0.5, 0.8):
        m = rng.uniform(size=(2, *shape)) < p
        for connectivity in (6, 26):
            labels, n = jitted("label", connectivity, ())(m)
            for i in range(2):
                want, n_want = R.label(m[i], connectivity)
                assert int(n[i]) == n_want
                np.testing.assert_array_equal(np.asarray(labels[i]), want)


def test_runs_of_one_line_joined_through_another():
    """Runs 0-1, 3 and 5 of one line touch a single run 0-5 of the line before (and
    nothing else): the chain of a line's runs covered by one run of another."""
    m = np.zeros((2, 1, 6), bool)
    m[0, 0, :] = True
    m[1, 0, [0, 1, 3, 5]] = True
    for connectivity in (6, 26):
        labels, n = K.label(m, connectivity, (K.max_runs(m.shape),))
        assert int(n) == 1 and np.array_equal(np.asarray(labels), m.astype(np.int32))


def test_batch_takes_the_tier_of_its_fullest_mask():
    """An empty and a sparse mask, whole, take a run tier; with a noisy mask (over 96 runs)
    the same batch takes the dense kernel. Either way every volume is labelled as SciPy
    labels it alone."""
    rng = np.random.default_rng(5)
    batch = np.stack(
        [np.zeros(SHAPE, bool), rng.uniform(size=SHAPE) < 0.1, rng.uniform(size=SHAPE) < 0.5]
    )
    tiers = (4, 96)
    assert max(map(runs, batch[:2])) <= tiers[1] < runs(batch[2])
    for connectivity in (6, 26):
        for volumes in (batch[:2], batch):
            labels, n = jitted("label", connectivity, tiers)(volumes)
            for i, m in enumerate(volumes):
                want, n_want = R.label(m, connectivity)
                assert int(n[i]) == n_want
                np.testing.assert_array_equal(np.asarray(labels[i]), want)


def test_dense_kernels_label_a_large_batch_in_groups(monkeypatch):
    """Labels count a batch's voxels in int32, so a batch with more is labelled a few
    volumes at a time (here groups of 4 volumes of 9 * 11 * 8 voxels, and 1; the limit
    must still hold one volume's 9 * 11 * 32 packed bits)."""
    monkeypatch.setattr(K, "_MAX_VOXELS", 4 * np.prod(SHAPE) + 5)
    groups = []  # the batch sizes the dense kernels are called with

    def spy(kernel):
        def called(masks, *args):
            groups.append(len(masks))
            return kernel(masks, *args)

        return called

    for name in ("_block_labels", "_dense_roots"):
        monkeypatch.setattr(K, name, spy(getattr(K, name)))
    masks = np.random.default_rng(4).uniform(size=(5, *SHAPE)) < 0.4
    for connectivity in (6, 26):
        groups.clear()
        labels, n = K.label(masks, connectivity, ())
        assert groups == [4, 1]
        for i, m in enumerate(masks):
            want, n_want = R.label(m, connectivity)
            assert int(n[i]) == n_want
            np.testing.assert_array_equal(np.asarray(labels[i]), want)


def test_compact_words_lists_the_first_set_bits():
    rng = np.random.default_rng(2)
    for size in (32, 33, 1000):
        for p in (0.0, 0.02, 0.5, 1.0):
            flat = rng.uniform(size=size) < p
            words = K.pack_lines(flat.reshape(1, 1, size)).ravel()
            bits = words.size * 32
            for capacity in (5, size):
                got = np.asarray(jax.jit(K.compact_words, static_argnums=1)(words, capacity))
                want = np.flatnonzero(flat)[:capacity]  # positions within the padded words
                np.testing.assert_array_equal(got[: want.size], want)
                assert (got[want.size :] == bits).all()


def test_run_tiers_for_a_volume_shape():
    assert K.max_runs((91, 109, 91)) == 91 * 109 * 46
    assert K.capacities_for((91, 109, 91)) == K.RUN_CAPACITIES
    assert K.capacities_for((64, 64, 64)) == (4096, 16384)  # 65536 > a quarter of 131072
    assert K.capacities_for(SHAPE) == ()
    assert K.capacities_for(SHAPE, (900, 396, 48, 4, 0)) == (4, 48, 396)


@KERNELS
@pytest.mark.parametrize("connectivity", [6, 26])
def test_small_components_removed(connectivity, caps):
    seg = np.zeros((12, 12, 12), bool)
    seg[1:3, 1:3, 1:3] = True  # 8 voxels: kept
    seg[6, 6, 6] = seg[7, 7, 7] = True  # diagonal pair: 2 components (6) or 1 of 2 (26)
    seg[9:11, 9, 9] = True  # 2 voxels
    seg[0, 11, 0:5] = True  # 5 voxels touching the border: removed at min 6
    expected = np.zeros_like(seg)
    expected[1:3, 1:3, 1:3] = True
    jax_impl = functools.partial(K.remove_small_components, capacities=caps)
    for impl in (R.remove_small_components, jax_impl):
        np.testing.assert_array_equal(np.asarray(impl(seg, 6, connectivity)), expected)
        assert np.asarray(impl(seg, 2, connectivity))[6, 6, 6] == (connectivity == 26)


@KERNELS
def test_components_hit_equals_scipy(caps):
    rng = np.random.default_rng(3)
    truth, pred = rng.uniform(size=SHAPE) < 0.2, rng.uniform(size=SHAPE) < 0.1
    for c in (6, 26):
        hit, n = K.components_hit(truth, pred, c, caps)
        assert (int(hit), int(n)) == R.components_hit(truth, pred, c)
    assert R.components_hit(truth, np.zeros(SHAPE, bool), 26)[0] == 0


@pytest.fixture(scope="module")
def residual_case():
    rng = np.random.default_rng(0)
    residual = np.abs(rng.normal(size=(14, 16, 12))).astype(np.float32)
    mask = np.zeros(residual.shape, bool)
    mask[2:12, 2:14, 1:11] = True
    return residual * mask, mask


def test_backends_agree_on_the_whole_pipeline(residual_case):
    residual, mask = residual_case
    cfg = EvaluateConfig(units="voxels", erosion_iterations=2, min_component_size=4)
    keep = np.ones(mask.shape, bool)
    out, tau = {}, 0.75  # between the filtered residuals' median and maximum
    for backend, comps in (("jax", "jax"), ("scipy", "scipy")):
        post = P.Postprocessor(dataclasses.replace(cfg, backend=backend, components=comps))
        filtered = post.filter(residual, mask, keep)
        out[backend] = filtered, post.segment(filtered, tau), post.eroded(mask)
    for a, b in zip(out["jax"], out["scipy"], strict=True):
        np.testing.assert_array_equal(a, b)
    assert out["jax"][1].any() and not out["jax"][1].all()  # a threshold that separates


def test_batched_filter_equals_one_by_one(residual_case):
    residual, mask = residual_case
    batch = np.stack([residual, residual[::-1].copy()])
    masks, keep = np.stack([mask, mask[::-1].copy()]), np.ones(batch.shape, bool)
    got = P.filter_residuals(batch, masks, keep, median_size=5, erosion_iterations=1)
    for i in range(2):
        want = R.median_filter(batch[i], 5) * R.binary_erosion(masks[i], 1)
        np.testing.assert_array_equal(np.asarray(got[i]), want)


def test_priors_zero_residuals_before_filtering():
    image = np.linspace(0, 1, 27).reshape(3, 3, 3).astype(np.float32)
    restored = np.full_like(image, 0.5)
    brain = np.ones(image.shape, bool)
    cfg = EvaluateConfig()
    assert P.keep_mask(image, restored, brain, cfg).all()  # off by default
    pos = P.keep_mask(image, restored, brain, dataclasses.replace(cfg, residual_sign="positive"))
    np.testing.assert_array_equal(pos, image > 0.5)
    neg = P.keep_mask(image, restored, brain, dataclasses.replace(cfg, residual_sign="negative"))
    np.testing.assert_array_equal(neg, image < 0.5)
    hyper = P.keep_mask(image, None, brain, dataclasses.replace(cfg, hyperintensity_quantile=0.75))
    assert hyper.sum() == 7 and hyper[image >= np.quantile(image, 0.75)].all()


def test_auto_components_fall_back_to_scipy(residual_case, monkeypatch):
    residual, mask = residual_case
    post = P.Postprocessor(EvaluateConfig(units="voxels", components="auto"))
    assert post.components_backend == "jax"  # on every device, CPU included

    def fail(*a, **k):
        raise jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: out of memory")

    monkeypatch.setattr(P, "segment", fail)
    with pytest.warns(UserWarning, match="scipy.ndimage.label"):
        seg = post.segment(residual, 1.0)
    np.testing.assert_array_equal(seg, R.remove_small_components(residual > 1.0, 6, 26))
    assert post.components_backend == "scipy" and "RESOURCE_EXHAUSTED" in post.fell_back
    strict = P.Postprocessor(EvaluateConfig(units="voxels", components="jax"))
    with pytest.raises(jax.errors.JaxRuntimeError):
        strict.segment(residual, 1.0)


def test_bad_settings_are_config_errors():
    for bad in (
        {"backend": "numpy"},
        {"components": "gpu"},
        {"connectivity": 8},
        {"median_size": 4},
    ):
        with pytest.raises(ConfigError):
            P.Postprocessor(EvaluateConfig(**bad))


def test_components_equal_scipy_on_real_scans():
    """The MSLUB patients (../shared): thresholded FLAIR residuals (1.4-4k runs each, the run
    kernel's default tiers) and the expert lesion masks, batched as bin/bench-postprocess
    times them."""
    from benchmarks.postprocess import real_cases
    from tests.conftest import require_shared_data

    seg, lesions, pred = real_cases(str(require_shared_data() / "mslub"))
    got = np.asarray(jitted("remove_small_components", 6, 26)(seg))
    for i in range(len(seg)):
        np.testing.assert_array_equal(got[i], R.remove_small_components(seg[i], 6, 26))
    hit, n = jax.jit(lambda t, p: K.components_hit(t, p, 26))(lesions, pred)
    for i in range(len(seg)):
        assert (int(hit[i]), int(n[i])) == R.components_hit(lesions[i], pred[i], 26)


def test_sizes_in_mm_give_the_same_segmentation_at_1_and_2_mm():
    """Issue 26, item 1: one anatomy (a brain, lesions of 3 to 6 mm radius, noise) sampled
    at 1 mm and at 2 mm. Post-processed with Baur's physical sizes, the 2 mm segmentation is
    the 1 mm one up to resampling; with the same sizes in voxels (5 voxels: a 10 mm window
    at 2 mm) the small lesions disappear at 2 mm."""
    from scipy import ndimage

    rng = np.random.default_rng(0)

    def world(step):  # voxel centres of a 64 mm cube, in mm
        return np.stack(np.meshgrid(*[np.arange(step / 2, 64, step)] * 3, indexing="ij"), -1)

    lesions = [((21, 23, 31), 6.0), ((41, 41, 27), 4.0), ((33, 15, 41), 3.0)]

    def scan(step):
        p = world(step)
        brain = np.linalg.norm(p - 32, axis=-1) < 28
        truth = np.zeros(brain.shape, bool)
        for c, r in lesions:
            truth |= np.linalg.norm(p - np.asarray(c), axis=-1) < r
        noise = rng.uniform(0, 0.3, brain.shape)
        return (truth * 1.0 + noise) * brain, brain, truth

    segs = {}
    for units in ("mm", "voxels"):
        cfg = EvaluateConfig(units=units, connectivity=26)
        post = P.Postprocessor(cfg)
        for step in (1.0, 2.0):
            residual, brain, truth = scan(step)
            size = (step,) * 3
            f = post.filter(residual, brain, np.ones_like(brain), voxel_size=size)
            segs[units, step] = post.segment(f, 0.6, voxel_size=size), truth
    fine, truth_fine = segs["mm", 1.0]
    coarse, truth_coarse = segs["mm", 2.0]
    up = ndimage.zoom(coarse.astype(np.uint8), 2, order=0).astype(bool)
    dice = lambda a, b: 2 * (a & b).sum() / (a.sum() + b.sum())
    assert dice(up, fine) > 0.8  # the same segmentation, up to resampling
    hits = lambda seg, truth: sum(
        seg[np.linalg.norm(world(2.0 if seg.shape[0] == 32 else 1.0) - np.asarray(c), axis=-1)
            < r].any() for c, r in lesions
    )  # fmt: skip
    assert hits(fine, truth_fine) == hits(coarse, truth_coarse) == 3
    voxels_coarse, _ = segs["voxels", 2.0]
    assert hits(voxels_coarse, truth_coarse) == 1  # 5 voxels at 2 mm erase the small ones
    assert P.voxel_settings(EvaluateConfig(), (1.0, 1.0, 3.0)).median_size == (5, 5, 1)
    with pytest.raises(ValueError, match="voxel size"):
        P.Postprocessor(EvaluateConfig()).filter(*scan(2.0)[:2], np.ones((32,) * 3, bool))
