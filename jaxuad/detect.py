"""From scans as acquired to lesion maps on their own grid (``jaxuad-detect``).

A *detector* is a run, the way its restorations are scored, and thresholds fitted on healthy
scans, stored together in ``RUN/detector.json`` by :func:`fit_detector` (``jaxuad-detect
--fit``). :func:`detect` then takes scans through every stage:

1. preprocessing (:mod:`jaxuad.preprocess`: N4, brain extraction when a scan has no mask,
   affine registration onto the run's template), unless every scan already lies on the
   run's grid with its brain mask;
2. restoration, scored as the detector was fitted (:func:`jaxuad.restore.restore_cohort`);
3. post-processing and the detector's healthy threshold (``fpr1``, 1 % healthy false
   positives, by default; :func:`jaxuad.evaluate.evaluate`);
4. back onto each scan's own grid: ``sub-<id>_lesions.nii.gz`` (uint8 mask),
   ``sub-<id>_score.nii.gz`` (the post-processed score), ``sub-<id>_lesions.png`` and the
   subject's entry in ``detect.json`` (lesion volume in ml, number of lesions).

Every stage's output is kept under ``OUT/steps/`` for inspection; ``OUT`` appears complete
or not at all.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from jaxuad.config import EvaluateConfig, from_dict
from jaxuad.core.errors import ConfigError, DataError
from jaxuad.core.io import OutputFolder, check_apart, read_json, write_json
from jaxuad.data.dataset import Subject, check_subject_id, write_manifest
from jaxuad.data.nifti import same_grid, voxel_size
from jaxuad.evaluate import evaluate, fit_thresholds_on_folder, threshold_names
from jaxuad.preprocess import find_scans
from jaxuad.pretrained import resolve_run
from jaxuad.restore import restore_cohort

DETECTOR_FILE = "detector.json"


@dataclasses.dataclass(frozen=True)
class Detector:
    """How a run detects: its method, the scoring of its restorations and the thresholds
    fitted on healthy scans with those settings (``RUN/detector.json``).

    Attributes:
      method: the restoration method.
      restore: ``restore.*`` settings the restorations used (``normative``, ``fuse``, ...).
      evaluate: the post-processing settings (an :class:`EvaluateConfig` as a dict).
      thresholds: the fitted thresholds, as ``jaxuad-evaluate`` writes ``thresholds.json``.
      healthy: the healthy scans they were fitted on, and their subjects.
      preprocess: how scans off the run's grid are preprocessed (``n4``: bias correction,
        which should match what the training scans went through).
    """

    method: str
    restore: dict
    evaluate: dict
    thresholds: dict
    healthy: dict
    preprocess: dict = dataclasses.field(default_factory=lambda: {"n4": True})

    def evaluate_config(self, threshold: str | None = None) -> EvaluateConfig:
        """The post-processing settings, segmenting at ``threshold`` (a threshold name)."""
        cfg = from_dict({"evaluate": self.evaluate}).evaluate
        if threshold is None:
            return cfg
        if threshold not in threshold_names(cfg):
            raise ConfigError(
                f"--threshold {threshold!r}: the detector has {', '.join(threshold_names(cfg))}"
            )
        return dataclasses.replace(cfg, seg_threshold=threshold)

    @classmethod
    def read(cls, run) -> Detector:
        path = Path(run) / DETECTOR_FILE
        if not path.is_file():
            raise ConfigError(
                f"{path}: not found; fit the detector on healthy scans first: "
                f"jaxuad-detect --fit --workdir {run} --data HEALTHY_SCANS"
            )
        d = read_json(path, "detector")
        try:
            return cls(**d)
        except TypeError as e:
            raise DataError(f"{path}: not a detector jaxuad wrote ({e})") from None


@dataclasses.dataclass(frozen=True)
class Finding:
    """One scan's detection, on its own grid.

    Attributes:
      subject: the subject id.
      lesion_ml: the segmented volume in ml.
      lesions: the number of 26-connected segmented components.
      files: the written files, by kind (``lesions``, ``score``, ``panel``).
    """

    subject: str
    lesion_ml: float
    lesions: int
    files: dict


def fit_detector(
    run,
    healthy,
    *,
    method: str | None = None,
    restore_overrides: dict | None = None,
    cfg: EvaluateConfig | None = None,
    modality: str = "T1w",
    n4: bool = True,
    progress: bool = True,
) -> Detector:
    """Restores healthy scans the run did not train on, fits the thresholds on them, and
    stores the detector in ``RUN/detector.json`` (replacing an earlier one).

    Args:
      run: the run folder.
      healthy: healthy scans on the run's grid (a folder or manifest), none of them in its
        training data: thresholds fitted on training scans would be too low.
      method: the restoration method (default: the run's).
      restore_overrides: ``restore.*`` settings (e.g. ``{"normative": True}``).
      cfg: post-processing settings (default :class:`EvaluateConfig`).
      modality: the contrast of the scans.
      n4: N4 bias correction when :func:`detect` preprocesses a scan; off when the run's
        training scans were not bias-corrected (N4 then changes a scan's contrast away
        from theirs).
    """
    cfg = cfg or EvaluateConfig()
    run = resolve_run(run)
    with tempfile.TemporaryDirectory(prefix=".detector-fit-", dir=run) as tmp:
        summary = restore_cohort(run, healthy, Path(tmp) / "healthy", method=method,
                                 modality=modality, restore_overrides=restore_overrides or {},
                                 progress=progress)  # fmt: skip
        thresholds = fit_thresholds_on_folder(Path(tmp) / "healthy", cfg)
    det = Detector(
        method=summary.method,
        restore=dict(restore_overrides or {}),
        evaluate=dataclasses.asdict(cfg),
        thresholds=thresholds,
        healthy={"data": str(Path(healthy).absolute()), "subjects": list(summary.subjects)},
        preprocess={"n4": n4},
    )
    write_json(dataclasses.asdict(det), Path(run) / DETECTOR_FILE)
    return det


def _on_run_grid(run, scans) -> bool:
    """Whether every scan has a brain mask and lies on the grid of the run's template."""
    from jaxuad.preprocess import template_path

    if any(mask is None for _, _, mask in scans):
        return False
    template = nib.load(template_path(run))
    return all(
        same_grid(img.shape, img.affine, template.shape, template.affine)
        for img in (nib.load(scan) for _, scan, _ in scans)
    )


def detect(
    data,
    run,
    out,
    *,
    threshold: str = "fpr1",
    modality: str = "T1w",
    overwrite: bool = False,
    progress: bool = True,
) -> list[Finding]:
    """Lesion maps of the scans in ``data`` on their own grids (module docstring).

    Args:
      data: a scan file or a folder of scans (:func:`find_scans`), as acquired or already
        on the run's grid with brain masks.
      run: a run folder holding a detector (:func:`fit_detector`), or the name of an
        installed one (:mod:`jaxuad.pretrained`).
      out: the output folder (new or empty; with ``overwrite`` an earlier detection).
      threshold: the detector's threshold to segment at (``fpr1``, ``fpr0.1``, ...,
        ``percentile``).

    Returns:
      One :class:`Finding` per scan, also written to ``out/detect.json``.

    Raises:
      ConfigError: no detector in ``run``; a threshold it does not have.
      DataError: unreadable scans; scans off the grid without the ``preprocess`` extra.
    """
    run = resolve_run(run)
    det = Detector.read(run)
    cfg = det.evaluate_config(threshold)
    scans = find_scans(data, modality)
    for sid, _, _ in scans:
        check_subject_id(sid, str(data))
    check_apart(out, [p for p in {Path(data), *(Path(s).parent for _, s, _ in scans)}
                      if p.is_dir()])  # fmt: skip
    t0 = time.perf_counter()

    def owned(folder):  # an earlier detection: what its detect.json lists, and its steps
        listed = read_json(Path(folder) / "detect.json", "detection") if (
            Path(folder) / "detect.json").is_file() else {"subjects": []}  # fmt: skip
        return {"detect.json", "steps"} | {
            Path(f).name for s in listed["subjects"] for f in s["files"].values()
        }

    with OutputFolder(out, overwrite=overwrite, owned=owned) as folder:
        steps = folder.path / "steps"
        steps.mkdir()
        native = not _on_run_grid(run, scans)
        if native:
            from jaxuad.preprocess import preprocess_scan, template_path

            prep = steps / "preprocessed"
            prep.mkdir()
            template = template_path(run)
            for sid, scan, mask in scans:
                preprocess_scan(scan, mask, template, prep, sid, modality=modality,
                                n4=det.preprocess.get("n4", True))  # fmt: skip
        else:
            subjects = [Subject(sid, scan, mask, None) for sid, scan, mask in scans]
            prep = write_manifest(subjects, steps / "scans.csv")
        space = "both" if native else "template"
        restore_cohort(run, prep, steps / "restored", method=det.method, modality=modality,
                       restore_overrides=det.restore, progress=progress, space=space)  # fmt: skip
        write_json(det.thresholds, steps / "thresholds.json")
        evaluate(steps / "restored", prep, steps / "evaluated", cfg,
                 thresholds=steps / "thresholds.json", modality=modality, progress=progress,
                 space=space)  # fmt: skip
        findings = []
        for sid, scan, _ in scans:
            src = steps / "evaluated" / ("native" if native else "")
            findings.append(_write_finding(folder.path, sid, scan, src, det, cfg))
        thr = det.thresholds["thresholds"][threshold]
        write_json({
            "run": str(Path(run).absolute()), "method": det.method, "scoring": det.restore,
            "threshold": {"name": threshold, **thr}, "preprocessed": native,
            "seconds": time.perf_counter() - t0,
            "subjects": [dataclasses.asdict(f) for f in findings],
        }, folder.path / "detect.json")  # fmt: skip
        folder.commit()
    return findings


def _write_finding(out: Path, sid: str, scan: Path, src: Path, det, cfg) -> Finding:
    """Copies a subject's segmentation and score onto its own grid as the detection's files,
    draws its panel and measures its lesions (volume, 26-connected components)."""
    from jaxuad.evaluate import SubjectView
    from jaxuad.report import subject_panel

    files = {
        "lesions": f"sub-{sid}_lesions.nii.gz",
        "score": f"sub-{sid}_score.nii.gz",
        "panel": f"sub-{sid}_lesions.png",
    }
    seg_img = nib.load(src / f"sub-{sid}_seg.nii.gz")
    score_img = nib.load(src / f"sub-{sid}_filtered.nii.gz")
    seg = np.asarray(seg_img.dataobj) > 0.5
    lesions_img = nib.Nifti1Image(seg.astype(np.uint8), seg_img.affine, seg_img.header)
    nib.save(lesions_img, out / files["lesions"])
    nib.save(score_img, out / files["score"])
    # drawn in RAS orientation, whatever the scan's: axial slices, anterior up
    canon = nib.as_closest_canonical
    image = canon(nib.load(scan)).get_fdata(dtype=np.float32)
    seg_c = np.asarray(canon(lesions_img).dataobj) > 0
    score_c = canon(score_img).get_fdata(dtype=np.float32)
    vmax = float(det.thresholds["thresholds"][cfg.seg_threshold]["value"]) * 2 or 1.0
    view = SubjectView.cut(image, None, score_c, seg_c, None)
    subject_panel(out / files["panel"], f"sub-{sid}: lesions at {cfg.seg_threshold}", view, vmax)
    _, count = ndimage.label(seg, np.ones((3, 3, 3)))
    ml = float(seg.sum() * np.prod(voxel_size(seg_img.affine)) / 1000.0)
    return Finding(sid, ml, int(count), files)


__all__ = ["DETECTOR_FILE", "Detector", "Finding", "detect", "fit_detector"]
