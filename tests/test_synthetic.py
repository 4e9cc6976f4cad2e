"""Synthetic lesions for label-free choices (jaxuad.data.synthetic)."""

import numpy as np
from scipy import ndimage

from jaxuad.data.synthetic import implant_lesions


def _scan():
    """A 40^3 "brain": a ball, bright (white matter) inside radius 14, darker outside."""
    r = np.sqrt(np.square(np.indices((40, 40, 40)) - 19.5).sum(0))
    brain = r < 17
    image = np.where(r < 14, 100.0, 60.0).astype(np.float32) * brain
    return image, brain


def test_lesions_are_dark_ellipsoids_in_deep_bright_tissue_and_the_input_is_kept():
    image, brain = _scan()
    before = image.copy()
    out = implant_lesions(image, brain, np.random.default_rng(3), count=(3, 5),
                          contrast=(-0.4, -0.3), spacing=(1.0, 1.0, 1.0), depth_mm=6)  # fmt: skip
    np.testing.assert_array_equal(image, before)
    assert 3 <= len(out.centres) <= 5
    deep = ndimage.distance_transform_edt(brain) >= 6
    for c in out.centres:
        assert deep[tuple(c)] and image[tuple(c)] == 100.0
    ratio = out.image[out.lesion] / image[out.lesion]
    assert out.lesion.any()
    assert (ratio <= 1 - 0.3 * 0.5 + 1e-6).all() and (ratio >= 0.6 - 1e-6).all()
    # the centre voxels carry a full lesion's contrast; nothing changes outside the brain
    assert np.all(out.image[tuple(out.centres.T)] <= 0.7 * 100.0 + 1e-4)
    np.testing.assert_array_equal(out.image[~brain], image[~brain])
    assert not (out.lesion & ~brain).any()
    # far from every lesion the scan is untouched
    dist = ndimage.distance_transform_edt(~out.lesion)
    np.testing.assert_array_equal(out.image[dist > 8], image[dist > 8])


def test_reproducible_from_the_seed_and_bright_for_positive_contrast():
    image, brain = _scan()
    kw = {"count": (2, 2), "contrast": (0.3, 0.3), "spacing": (1.0, 1.0, 1.0)}
    a = implant_lesions(image, brain, np.random.default_rng(7), **kw)
    b = implant_lesions(image, brain, np.random.default_rng(7), **kw)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.lesion, b.lesion)
    assert (a.image[a.lesion] > image[a.lesion]).all()


def test_a_moved_grid_keeps_the_field_of_view_and_resampling_follows_the_affines():
    from jaxuad.data.synthetic import moved_grid, resample

    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [-20, -30, -10]
    vol = np.zeros((20, 24, 16), np.float32)
    vol[8:12, 10:14, 6:10] = 1.0
    same = moved_grid(vol.shape, affine, (0, 0, 0), (0, 0, 0), (2, 2, 2))
    assert same[0] == vol.shape and np.allclose(same[1], affine)
    np.testing.assert_allclose(resample(vol, affine, *same, order=0), vol)
    shape, moved = moved_grid(vol.shape, affine, (0, 0, 90), (4, 0, 0), (1, 1, 1))
    assert shape == (40, 48, 32)
    centre = lambda s, a: (a @ np.r_[(np.asarray(s) - 1) / 2, 1])[:3]  # noqa: E731
    np.testing.assert_allclose(centre(shape, moved), centre(vol.shape, affine) + [4, 0, 0])
    # the cube's centre of mass lands where the affines say, in mm
    out = resample(vol, affine, shape, moved, order=0)
    com = lambda v, a: (a @ np.r_[np.argwhere(v > 0.5).mean(0), 1])[:3]  # noqa: E731
    np.testing.assert_allclose(com(out, moved), com(vol, affine), atol=0.6)
