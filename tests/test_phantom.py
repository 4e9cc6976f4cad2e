import numpy as np
import pytest

from jaxuad.data import phantom


@pytest.fixture(scope="module")
def subjects():
    return {
        "healthy": phantom.make_subject(phantom.subject_seed(0, "healthy", 0)),
        "ms": phantom.make_subject(phantom.subject_seed(0, "lesion", 0), "ms"),
        "tumour": phantom.make_subject(phantom.subject_seed(0, "lesion", 1), "tumour"),
    }


def test_deterministic_and_seed_dependent(subjects):
    again = phantom.make_subject(phantom.subject_seed(0, "healthy", 0))
    other = phantom.make_subject(phantom.subject_seed(0, "healthy", 1))
    for c in phantom.CONTRASTS:
        np.testing.assert_array_equal(again.images[c], subjects["healthy"].images[c])
    assert not np.array_equal(other.brainmask, subjects["healthy"].brainmask)


def test_grid_and_brain_size(subjects):
    s = subjects["healthy"]
    assert s.brainmask.shape == phantom.SHAPE == (91, 109, 91)
    volume_ml = s.brainmask.sum() * 8 / 1000  # 2 mm voxels
    assert 900 < volume_ml < 1800  # adult brains: roughly 1000-1600 ml
    for img in s.images.values():
        assert np.all(img[~s.brainmask] == 0) and np.all(np.isfinite(img))


def test_tissue_contrasts(subjects):
    s = subjects["healthy"]
    mean = {
        c: {t: s.images[c][s.labels == t].mean() for t in (phantom.CSF, phantom.GM, phantom.WM)}
        for c in phantom.CONTRASTS
    }
    t1, t2, fl = mean["T1w"], mean["T2w"], mean["FLAIR"]
    assert t1[phantom.WM] > t1[phantom.GM] > t1[phantom.CSF]
    assert t2[phantom.CSF] > t2[phantom.GM] > t2[phantom.WM]
    assert fl[phantom.GM] > fl[phantom.WM] > fl[phantom.CSF]  # CSF suppressed
    fractions = np.bincount(s.labels[s.brainmask], minlength=9) / s.brainmask.sum()
    assert fractions[phantom.GM] > 0.2 and fractions[phantom.WM] > 0.2
    assert 0.03 < fractions[phantom.CSF] < 0.4  # sulci, fissure and ventricles


def test_lesions(subjects):
    assert not subjects["healthy"].lesion.any()
    ms, tumour = subjects["ms"], subjects["tumour"]
    assert ms.lesion.any() and np.all(ms.brainmask[ms.lesion])
    assert np.all(ms.labels[ms.lesion] == phantom.MS)
    # MS lesions are FLAIR-hyperintense against white matter.
    fl = ms.images["FLAIR"]
    assert fl[ms.lesion].mean() > 1.5 * fl[ms.labels == phantom.WM].mean()
    assert tumour.lesion.sum() > 5 * ms.lesion.sum()
    assert {phantom.CORE, phantom.RIM, phantom.OEDEMA} <= set(np.unique(tumour.labels))
