"""Scores of post-processed residuals against lesion masks, as typed results.

Metrics, all inside the brain mask (definitions in :mod:`jaxuad.metrics`):

* per threshold: Dice per subject, then mean ± std over subjects with a lesion mask
  (Baur); precision, recall and realised FPR over the pooled test voxels; the lesion-wise
  detection rate (ground-truth components hit, at the post-processing's connectivity); all
  after component removal;
* over the cohort, from merged histograms (memory fixed by bins, not voxels): voxel-level
  AUROC (with its tie bound) and AUPRC of the post-processed residual, and the oracle best
  Dice, a threshold chosen on the test data itself and labelled so everywhere;
* the pipeline's own **ceiling**: each lesion mask passed through the same post-processing
  as a residual (a perfect residual: 1 in the lesions, 0 elsewhere, thresholded at 0.5).
  Its Dice and the lesions it keeps bound what any model can reach through this
  post-processing; a method near its ceiling is limited by the post-processing, not by
  the model.

:class:`Scorer` adds subjects one at a time (the folder evaluation streams them);
:func:`score` does it for arrays in memory. Both give an :class:`EvalResult`, whose
:meth:`EvalResult.to_json` is ``metrics.json``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from jaxuad import metrics as M
from jaxuad.config import ConfigError, EvaluateConfig
from jaxuad.data import DataError, read_json
from jaxuad.evaluate.thresholds import check_thresholds, check_volumes, settings, threshold_names
from jaxuad.postprocess import Postprocessor

_NAN = float("nan")


@dataclasses.dataclass(frozen=True)
class ThresholdScores:
    """The cohort's figures at one healthy-fitted threshold (after post-processing)."""

    threshold: float  # the residual value, ``residual > threshold`` is lesion
    healthy_fpr: float  # FPR it realised on the healthy voxels it was fitted on
    dice_mean: float  # Dice per subject with a lesion mask, then the mean (Baur)
    dice_std: float  # population standard deviation of those Dice
    precision: float  # pooled over the test subjects' brain voxels
    recall: float
    fpr: float  # realised on the test subjects' normal brain voxels
    detection_rate: float  # lesions_detected / lesions
    lesions: int  # ground-truth components
    lesions_detected: int  # of those, touched by the segmentation


@dataclasses.dataclass(frozen=True)
class SubjectScores:
    """One subject's row."""

    subject: str
    has_lesion_mask: bool  # False: scored as lesion-free, left out of the mean Dice
    dice: dict[str, float]  # threshold name -> Dice (1.0 when both sets are empty)
    lesion_voxels: int  # inside the brain mask
    segmented_voxels: int  # at the result's seg_threshold
    ceiling_dice: float = _NAN  # Dice of the post-processed lesion mask (NaN: no mask)
    ceiling_lesions_kept: int = 0  # lesions it still touches after post-processing


def pick_slice(lesion: np.ndarray | None, score: np.ndarray) -> int:
    """The axial slice (last axis) with most lesion voxels, else the largest total score."""
    if lesion is not None and lesion.any():
        return int(np.argmax(lesion.sum(axis=(0, 1))))
    return int(np.argmax(score.sum(axis=(0, 1))))


class SubjectView(NamedTuple):
    """What a subject's report panel shows: one axial slice ``k`` of each volume it was
    scored from, [X, Y] each, cut while scoring so the report reads nothing back."""

    k: int  # the slice with most lesion (without a lesion mask: most segmentation)
    image: np.ndarray  # the normalised input
    restored: np.ndarray | None  # None for the voxel-wise baselines
    filtered: np.ndarray  # the post-processed residual
    seg: np.ndarray  # bool, at the result's seg_threshold
    lesion: np.ndarray | None  # bool; None without a lesion mask
    window: tuple[float, float]  # the input's 0.5 and 99.5 percentiles over the volume

    @classmethod
    def cut(cls, image, restored, filtered, seg, lesion) -> SubjectView:
        """The view of [X, Y, Z] volumes (``restored`` and ``lesion`` may be None)."""
        image = np.asarray(image)
        k = pick_slice(lesion if lesion is not None else seg, filtered)
        inside = image[image > 0]
        lo, hi = np.percentile(inside, [0.5, 99.5]) if inside.size else (0.0, 1.0)
        return cls(
            k,
            image[:, :, k],
            None if restored is None else np.asarray(restored)[:, :, k],
            np.asarray(filtered)[:, :, k],
            np.asarray(seg, bool)[:, :, k],
            None if lesion is None else np.asarray(lesion, bool)[:, :, k],
            (float(lo), float(hi)),
        )


@dataclasses.dataclass(frozen=True)
class Ceiling:
    """The post-processing's ceiling over the subjects with a lesion mask."""

    dice_mean: float  # mean over subjects of the post-processed lesion mask's Dice
    dice_std: float
    lesions: int  # ground-truth components
    lesions_kept: int  # of those, touched by the post-processed lesion mask


@dataclasses.dataclass(frozen=True)
class EvalResult:
    """Everything ``metrics.json`` holds, typed. ``at_threshold`` is keyed by threshold name
    (``percentile``, ``fpr<x>``); ``seg_threshold`` names the one segmentations use."""

    at_threshold: dict[str, ThresholdScores]
    subjects: tuple[SubjectScores, ...]
    seg_threshold: str
    auroc: float  # voxel-level, pooled, post-processed residual (before components)
    auroc_tie_bound: float  # |exact AUROC - auroc| <= this (histogram ties)
    auprc: float
    oracle_dice: float  # best pooled Dice at a threshold chosen on this test data
    oracle_threshold: float
    n_subjects: int  # subjects with a lesion mask (those in the mean Dice)
    lesion_voxels: int  # pooled brain voxels per class
    normal_voxels: int
    thresholds: dict  # the fitted thresholds, as ``thresholds.json`` stores them
    settings: dict  # the EvaluateConfig used
    # Where the residuals came from (None when scored from arrays).
    pred: str | None = None
    data: str | None = None
    model: str | None = None
    latent: object = None  # the run's latent shape, as restore.json gives it
    method: str | None = None
    prior: str | None = None
    modality: str | None = None
    seconds_per_slice: float | None = None
    seconds_per_iteration: float | None = None
    postprocess: dict = dataclasses.field(default_factory=dict)  # backends and timings
    name: str | None = None  # a label for tables (jaxuad-compare, reproductions)
    ceiling: Ceiling | None = None  # None in metrics.json files from before it existed
    # The merged histogram behind the curves; kept in memory only (not in metrics.json).
    histogram: M.CohortHistogram | None = dataclasses.field(default=None, compare=False, repr=False)
    # Each subject's panel slices (by subject id), kept in memory only, like the histogram.
    views: dict[str, SubjectView] | None = dataclasses.field(
        default=None, compare=False, repr=False
    )

    @property
    def dice_mean(self) -> float:
        """Mean Dice at ``seg_threshold``."""
        return self.at_threshold[self.seg_threshold].dice_mean

    @property
    def dice_std(self) -> float:
        """Standard deviation of the Dice at ``seg_threshold``."""
        return self.at_threshold[self.seg_threshold].dice_std

    def subject(self, subject: str) -> SubjectScores:
        """The row of ``subject``."""
        (row,) = [r for r in self.subjects if r.subject == subject]
        return row

    def to_json(self) -> dict:
        """The ``metrics.json`` layout (stable: reports and reproductions read it); NaN
        (a figure without data, e.g. Dice with no lesion mask) becomes null."""
        return _nan_to_none(
            {
                "pred": self.pred,
                "data": self.data,
                "model": self.model,
                "latent": self.latent,
                "method": self.method,
                "prior": self.prior,
                "modality": self.modality,
                "seconds_per_slice": self.seconds_per_slice,
                "seconds_per_iteration": self.seconds_per_iteration,
                **({"name": self.name} if self.name is not None else {}),
                "postprocess": self.postprocess,
                "settings": self.settings,
                "thresholds": self.thresholds,
                "seg_threshold": self.seg_threshold,
                "summary": {
                    "dice_mean": self.dice_mean,
                    "dice_std": self.dice_std,
                    "auroc": self.auroc,
                    "auroc_tie_bound": self.auroc_tie_bound,
                    "auprc": self.auprc,
                    "oracle_dice": self.oracle_dice,
                    "oracle_threshold": self.oracle_threshold,
                    "n_subjects": self.n_subjects,
                    "lesion_voxels": self.lesion_voxels,
                    "normal_voxels": self.normal_voxels,
                },
                "at_threshold": {n: dataclasses.asdict(a) for n, a in self.at_threshold.items()},
                "ceiling": None if self.ceiling is None else dataclasses.asdict(self.ceiling),
                "subjects": [
                    {
                        "subject": r.subject,
                        "has_lesion_mask": r.has_lesion_mask,
                        **{f"dice_{n}": d for n, d in r.dice.items()},
                        "dice": r.dice[self.seg_threshold],
                        "lesion_voxels": r.lesion_voxels,
                        "segmented_voxels": r.segmented_voxels,
                        "ceiling_dice": r.ceiling_dice,
                        "ceiling_lesions_kept": r.ceiling_lesions_kept,
                    }
                    for r in self.subjects
                ],
            }
        )

    @classmethod
    def from_json(cls, d: dict) -> EvalResult:
        """The inverse of :meth:`to_json` (without the histogram)."""
        names = list(d["at_threshold"])
        s = {k: _NAN if v is None else v for k, v in d["summary"].items()}
        return cls(
            at_threshold={
                n: ThresholdScores(**{k: _NAN if v is None else v for k, v in a.items()})
                for n, a in d["at_threshold"].items()
            },
            subjects=tuple(
                SubjectScores(
                    subject=r["subject"],
                    has_lesion_mask=r["has_lesion_mask"],
                    dice={n: r[f"dice_{n}"] for n in names},
                    lesion_voxels=r["lesion_voxels"],
                    segmented_voxels=r["segmented_voxels"],
                    ceiling_dice=_nan(r.get("ceiling_dice")),
                    ceiling_lesions_kept=r.get("ceiling_lesions_kept", 0),
                )
                for r in d["subjects"]
            ),
            ceiling=(
                Ceiling(**{k: _nan(v) for k, v in d["ceiling"].items()})
                if d.get("ceiling")
                else None
            ),
            seg_threshold=d["seg_threshold"],
            **{k: s[k] for k in _SUMMARY_FIELDS},
            thresholds=d["thresholds"],
            settings=d["settings"],
            **{k: d.get(k) for k in _INFO_FIELDS},
            postprocess=d.get("postprocess") or {},
        )

    @classmethod
    def read(cls, path) -> EvalResult:
        """A ``metrics.json`` written by ``jaxuad-evaluate``; a clear error otherwise."""
        d = read_json(Path(path), "evaluation metrics")
        try:
            return cls.from_json(d)
        except (KeyError, TypeError, AttributeError) as e:
            raise DataError(f"{path}: not a metrics.json of jaxuad-evaluate ({e!r})") from None

    def write(self, path) -> None:
        """Writes :meth:`to_json` to ``path`` (strict JSON, atomically)."""
        from jaxuad.data import write_json

        write_json(self.to_json(), Path(path))


_SUMMARY_FIELDS = (
    "auroc",
    "auroc_tie_bound",
    "auprc",
    "oracle_dice",
    "oracle_threshold",
    "n_subjects",
    "lesion_voxels",
    "normal_voxels",
)
_INFO_FIELDS = (
    "pred",
    "data",
    "model",
    "latent",
    "method",
    "prior",
    "modality",
    "seconds_per_slice",
    "seconds_per_iteration",
    "name",
)


def _nan(v):
    return _NAN if v is None else v


def _nan_to_none(obj):
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_nan_to_none(v) for v in obj]
    return obj


class _Counts:
    """Pooled voxel and component counts for one threshold, and per-subject Dice."""

    def __init__(self):
        self.tp = self.fp = self.fn = self.tn = self.hit = self.components = 0
        self.dice: list[float] = []

    def add(self, seg, truth, brain, hit_components: tuple[int, int] | None, scored: bool):
        s, t = seg & brain, truth & brain
        self.tp += int(np.sum(s & t))
        self.fp += int(np.sum(s & ~t))
        self.fn += int(np.sum(~s & t))
        self.tn += int(np.sum(brain & ~s & ~t))
        if hit_components is not None:
            self.hit += hit_components[0]
            self.components += hit_components[1]
        if scored:
            self.dice.append(M.dice(s, t))

    def summary(self, threshold: dict) -> ThresholdScores:
        d, ratio = self.dice, lambda a, b: a / b if b else _NAN
        return ThresholdScores(
            threshold=threshold["value"],
            healthy_fpr=threshold.get("healthy_fpr", _NAN),
            dice_mean=float(np.mean(d)) if d else _NAN,
            dice_std=float(np.std(d)) if d else _NAN,
            precision=ratio(self.tp, self.tp + self.fp),
            recall=ratio(self.tp, self.tp + self.fn),
            fpr=ratio(self.fp, self.fp + self.tn),
            detection_rate=ratio(self.hit, self.components),
            lesions=self.components,
            lesions_detected=self.hit,
        )


class Scorer:
    """Scores subjects one at a time against fitted thresholds, then sums up.

    Args:
      thresholds: fitted thresholds (:func:`~jaxuad.evaluate.fit_thresholds`' result).
      cfg: the post-processing settings they were fitted with.
      post: a :class:`Postprocessor` to reuse (its compiled kernels).
    """

    def __init__(self, thresholds: dict, cfg: EvaluateConfig, post: Postprocessor | None = None):
        self.names = threshold_names(cfg)
        if cfg.seg_threshold not in self.names:
            raise ConfigError(
                f"evaluate.seg_threshold must be one of {self.names}, got {cfg.seg_threshold!r}"
            )
        check_thresholds(thresholds, self.names)
        self.cfg, self.fitted = cfg, thresholds
        self.post = post or Postprocessor(cfg)
        self.values = {n: thresholds["thresholds"][n]["value"] for n in self.names}
        self.hist = M.CohortHistogram()
        self.counts = {n: _Counts() for n in self.names}
        self.rows: list[SubjectScores] = []
        self.segment_seconds = 0.0
        self.ceiling = _Counts()

    def segment(self, filtered: list[np.ndarray], voxel_sizes=None) -> dict[str, list[np.ndarray]]:
        """Segmentations of post-processed residuals at every threshold (by name); adds the
        time taken at ``seg_threshold`` to ``segment_seconds``."""
        segs = {}
        for n in self.names:
            t0 = time.perf_counter()
            segs[n] = self.post.segment_many(filtered, self.values[n], voxel_sizes)
            if n == self.cfg.seg_threshold:
                self.segment_seconds += time.perf_counter() - t0
        return segs

    def add(
        self, subject: str, filtered, segs: dict, brainmask, lesion, voxel_size=None
    ) -> SubjectScores:
        """Adds one subject: its post-processed residual [X, Y, Z], its segmentation at each
        threshold, its brain mask and lesion mask (None: no mask, scored as lesion-free but
        left out of the mean Dice), and its voxel size in mm (for the ceiling's
        post-processing; needed with ``evaluate.units="mm"``)."""
        brain = np.asarray(brainmask, bool)
        truth = np.zeros_like(brain) if lesion is None else np.asarray(lesion, bool) & brain
        ceiling_dice, kept = _NAN, 0
        if lesion is not None:  # a perfect residual through the same post-processing
            perfect = self.post.filter(truth.astype(np.float32), brain, brain, voxel_size)
            seg = self.post.segment(perfect, 0.5, voxel_size)
            hits = self.post.components_hit(truth, seg)
            self.ceiling.add(seg, truth, brain, hits, True)
            ceiling_dice, kept = M.dice(seg & brain, truth), hits[0]
        self.hist.add(M.histogram(filtered, truth, brain))
        dice = {}
        for n in self.names:
            seg = np.asarray(segs[n], bool)
            hits = self.post.components_hit(truth, seg) if lesion is not None else None
            self.counts[n].add(seg, truth, brain, hits, lesion is not None)
            dice[n] = M.dice(seg & brain, truth)
        row = SubjectScores(
            subject=subject,
            has_lesion_mask=lesion is not None,
            dice=dice,
            lesion_voxels=int(truth.sum()),
            segmented_voxels=int(np.sum(segs[self.cfg.seg_threshold])),
            ceiling_dice=ceiling_dice,
            ceiling_lesions_kept=kept,
        )
        self.rows.append(row)
        return row

    def result(self, **info) -> EvalResult:
        """The :class:`EvalResult` of every subject added; ``info`` fills its provenance
        fields (``pred``, ``model``, ...)."""
        auroc, bound = self.hist.auroc()
        oracle_dice, oracle_threshold = self.hist.best_dice()
        return EvalResult(
            at_threshold={
                n: self.counts[n].summary(self.fitted["thresholds"][n]) for n in self.names
            },
            subjects=tuple(self.rows),
            seg_threshold=self.cfg.seg_threshold,
            auroc=auroc,
            auroc_tie_bound=bound,
            auprc=self.hist.auprc(),
            oracle_dice=oracle_dice,
            oracle_threshold=oracle_threshold,
            n_subjects=len(self.counts[self.cfg.seg_threshold].dice),
            lesion_voxels=self.hist.n_pos,
            normal_voxels=self.hist.n_neg,
            thresholds=json.loads(json.dumps(self.fitted)),
            settings=json.loads(json.dumps(settings(self.cfg))),
            histogram=self.hist,
            ceiling=Ceiling(
                dice_mean=float(np.mean(self.ceiling.dice)) if self.ceiling.dice else _NAN,
                dice_std=float(np.std(self.ceiling.dice)) if self.ceiling.dice else _NAN,
                lesions=self.ceiling.components,
                lesions_kept=self.ceiling.hit,
            ),
            **info,
        )


def score(
    residuals: Sequence,
    masks: Sequence,
    lesions: Sequence,
    thresholds: dict,
    cfg: EvaluateConfig,
    *,
    keeps: Sequence | None = None,
    voxel_sizes: Sequence | None = None,
    subjects: Sequence[str] | None = None,
    post: Postprocessor | None = None,
) -> EvalResult:
    """Post-processes residual volumes and scores them against lesion masks.

    Args:
      residuals: residual volumes, each [X, Y, Z] float (shapes may differ).
      masks: their brain masks, each [X, Y, Z] bool.
      lesions: their lesion masks, each [X, Y, Z] bool, or None for a subject without one.
      thresholds: fitted thresholds (:func:`~jaxuad.evaluate.fit_thresholds`).
      cfg: the post-processing settings the thresholds were fitted with.
      keeps: optional [X, Y, Z] bool per volume (the residual priors); None keeps all.
      voxel_sizes: each volume's voxel edges in mm (``Volume.voxel_size``); needed with
        ``evaluate.units="mm"`` (the default), unused with ``"voxels"``.
      subjects: names for the rows (default ``"0"``, ``"1"``, ...).
      post: a :class:`Postprocessor` to reuse.

    Returns:
      An :class:`EvalResult`.

    Example:
      >>> import numpy as np
      >>> from jaxuad.config import EvaluateConfig
      >>> from jaxuad.evaluate import fit_thresholds, score
      >>> cfg = EvaluateConfig(units="voxels", median_size=1, erosion_iterations=0,
      ...                      min_component_size=1)
      >>> rng = np.random.default_rng(0)
      >>> mask = np.ones((16, 16, 16), bool)
      >>> fitted = fit_thresholds([rng.uniform(0, 0.1, mask.shape)], [mask], cfg)
      >>> lesion = np.zeros_like(mask); lesion[4:8, 4:8, 4:8] = True
      >>> residual = rng.uniform(0, 0.1, mask.shape) + lesion  # lesion voxels stand out
      >>> result = score([residual], [mask], [lesion], fitted, cfg)
      >>> result.auroc, result.at_threshold["fpr1"].lesions_detected
      (1.0, 1)
    """
    residuals, masks, lesions = list(residuals), list(masks), list(lesions)
    check_volumes(residuals, masks, cfg, lesions=lesions, keeps=keeps, voxel_sizes=voxel_sizes,
                  subjects=subjects)  # fmt: skip
    keeps = [None] * len(residuals) if keeps is None else list(keeps)
    subjects = [str(i) for i in range(len(residuals))] if subjects is None else list(subjects)
    scorer = Scorer(thresholds, cfg, post)
    masks = [np.asarray(m, bool) for m in masks]
    filtered = scorer.post.filter_many(
        [
            (np.asarray(r, np.float32), m, np.ones_like(m) if k is None else np.asarray(k, bool))
            for r, m, k in zip(residuals, masks, keeps, strict=True)
        ],
        voxel_sizes,
    )
    segs = scorer.segment(filtered, voxel_sizes)
    sizes = [None] * len(masks) if voxel_sizes is None else list(voxel_sizes)
    for i, (sid, f, m, les) in enumerate(zip(subjects, filtered, masks, lesions, strict=True)):
        scorer.add(sid, f, {n: s[i] for n, s in segs.items()}, m, les, sizes[i])
    return scorer.result()
