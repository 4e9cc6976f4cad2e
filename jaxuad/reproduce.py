"""Re-runnable reproductions of Baur et al. 2018's and Chen et al. 2019's Table 1.

A reproduction is a list of :class:`Step` s, each one jaxuad command line (``jaxuad-phantom``,
``jaxuad-train``, ``jaxuad-restore``, ``jaxuad-evaluate``): the commands a researcher would
type, run in this process (so compiled programs are shared) and written to
``commands.sh`` before they run. A step whose output is complete is skipped on the next
invocation, and a training step that was killed continues with ``--resume``, so a
two-hour run survives interruption. Heavy outputs (checkpoints, restorations as NIfTI)
stay in the work folder; the results folder gets what is meant to be kept: ``table.md``
(the table and which of the paper's claims hold on this run), its figures, each row's
``metrics.json``, report and figures, the commands and their timings.

Protocols (issue 5):

* **real**: train on healthy IXI T1 (``../shared/data/ixi``), holding out 20 subjects for
  thresholds and lambda; test on MSLUB T1 (``../shared/data/mslub``). Slices with brain,
  centre-padded 91x109 -> 128x128.
* **phantom**: the same on jaxuad's brain phantom, once with FLAIR-like and once with
  T1w-like contrast.

Budgets: ``paper`` is the papers' settings (150 epochs, AnoGAN's 82; 800 restoration
iterations, L = 16, AnoGAN's 100 search steps). ``small`` cuts epochs, subjects and
iterations to fit 2 hours on 2 CPU cores (minutes on the phantom); every cut is in
:data:`BUDGETS` and printed in each table's header. ``smoke`` is for tests.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import io
import json
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from jaxuad.data.nifti import write_json, write_text

PAPERS = ("baur", "chen")
DATASETS = ("real", "phantom")
# The project's data folder beside its checkout; bin/reproduce-* run from the checkout.
SHARED_DATA = Path("../shared/data")


@dataclass(frozen=True)
class Budget:
    """What one reproduction may spend. ``None`` keeps the model config's own value."""

    epochs: int | None = None  # training epochs (None: 150, AnoGAN 82)
    train_subjects: int | None = None  # healthy training subjects (None: all not held out)
    holdout: int = 20  # healthy subjects never trained on (thresholds, lambda)
    threshold_subjects: int | None = None  # of those, used for thresholds and lambda
    slices: str = "brain"  # brain: every slice with brain; middle:N: N central slices
    steps: int | None = None  # LG / MAP iterations (None: 800)
    restore_learning_rate: float | None = None  # their Adam step (None: 5e-3)
    samples: int | None = None  # L decoder samples of the local Gaussian (None: 16)
    anogan_steps: int | None = None  # AnoGAN latent search steps (None: 100)
    calibrate_slices: int | None = None  # healthy slices of the lambda search (None: 64)
    lam_grid: str | None = None  # lambda values searched, comma-separated (None: 0.1..1e4)
    learning_rate: float | None = None  # training learning rate (None: the paper's)
    variant: str = "default"  # config variant (smoke: tiny shapes, for tests)
    phantom_healthy: int = 12  # phantom cohort sizes
    phantom_lesion: int = 6

    def describe(self) -> str:
        """The settings this budget changes; everything else is the paper's."""
        cut = [
            f"{f.name}={getattr(self, f.name)}"
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != f.default and not f.name.startswith("phantom_")
        ]
        return ", ".join(cut) if cut else "the papers' settings throughout"


DECADES = "0.1,1,10,100,1000,10000"
_SMOKE = Budget(
    epochs=1,
    holdout=2,
    slices="middle:8",
    variant="smoke",
    phantom_healthy=3,
    phantom_lesion=2,
    calibrate_slices=4,
    steps=5,
    anogan_steps=3,
)
BUDGETS: dict[tuple[str, str, str], Budget] = {
    # Baur et al.: 150 epochs (AnoGAN 82), reconstruction, AnoGAN's 100-step latent search.
    ("baur", "real", "paper"): Budget(),
    ("baur", "real", "small"): Budget(epochs=2, train_subjects=30, anogan_steps=15),
    ("baur", "phantom", "paper"): Budget(holdout=4),
    ("baur", "phantom", "small"): Budget(epochs=4, holdout=4, slices="middle:32", anogan_steps=15),
    # Chen et al.: Adam 2e-5 for (their) 150 epochs; 800 iterations, L = 16.
    ("chen", "real", "paper"): Budget(),
    # small: 50 iterations at 8x the step size reach as far as the paper's 800 at 5e-3 can
    # move a pixel (Adam moves each by at most ~lr per step); lambda on a decade grid.
    ("chen", "real", "small"): Budget(
        epochs=8,
        train_subjects=20,
        threshold_subjects=5,
        steps=50,
        restore_learning_rate=4e-2,
        samples=4,
        calibrate_slices=16,
        lam_grid=DECADES,
        learning_rate=1e-3,
    ),
    ("chen", "phantom", "paper"): Budget(holdout=4),
    ("chen", "phantom", "small"): Budget(
        epochs=10,
        holdout=4,
        threshold_subjects=2,
        slices="middle:16",
        steps=50,
        restore_learning_rate=4e-2,
        samples=4,
        calibrate_slices=8,
        lam_grid=DECADES,
        learning_rate=1e-3,
    ),
    **{(p, d, "smoke"): _SMOKE for p in PAPERS for d in DATASETS},
}


@dataclass(frozen=True)
class Row:
    """One table row: a trained run restored by one method (and prior)."""

    label: str  # as the paper names it
    run: str  # training run (work folder name)
    method: str = "reconstruction"
    prior: str | None = None  # tv | l1 for the iterative methods


# (work folder, --model, --variant or None)
BAUR_RUNS = {
    "dae": ("dae", None),
    "sae1": ("sae", "sae1"),
    "sae": ("sae", None),
    "sae_gan": ("sae_gan", None),
    "dvae": ("dvae", None),
    "svae": ("svae", None),
    "anovaegan": ("anovaegan", None),
    "anogan": ("anogan", None),
}
BAUR_ROWS = [
    Row("dAE", "dae"),
    Row("sAE (8x8 bottleneck)", "sae1"),
    Row("sAE (16x16 bottleneck)", "sae"),
    Row("AE-GAN (sAE + D)", "sae_gan"),
    Row("dVAE", "dvae"),
    Row("sVAE", "svae"),
    Row("AnoVAEGAN", "anovaegan"),
    Row("AnoGAN", "anogan", "anogan"),
]
CHEN_RUNS = {"vae_chen": ("vae_chen", None), "aae": ("aae", None), "gmvae": ("gmvae", None)}
CHEN_ROWS = [
    Row("VAE (reconstruction)", "vae_chen"),
    Row("AAE (reconstruction)", "aae"),
    *[
        Row(label, run, method, prior)
        for prior in ("tv", "l1")
        for label, run, method in (
            ("VAE-MAP", "vae_chen", "map"),
            ("GMVAE-MAP", "gmvae", "gmvae_map"),
            ("VAE-LG(est)", "vae_chen", "lg_est"),
            ("VAE-LG(neural)", "vae_chen", "lg_neural"),
            ("AAE-LG", "aae", "lg_neural"),
        )
    ],
]


def row_key(row: Row) -> str:
    return "-".join(p for p in (row.run, row.method, row.prior) if p)


@dataclass(frozen=True)
class Step:
    argv: tuple[str, ...]  # a jaxuad command line
    done: Path  # written after the step succeeds; its presence skips the step
    resume: Path | None = None  # when this exists (a killed training run), add --resume
    # What a step belongs to, general to specific: (run,) for training, (run, row) for a
    # row's steps. A failure fails the most specific tag, so a diverged training run skips
    # all its rows and a failed restoration only its own row; later steps carrying a failed
    # tag are skipped and the row is reported as failed. Untagged steps (the phantom) abort.
    tags: tuple[str, ...] = ()


class ReproduceError(RuntimeError):
    """A step failed; the message names the step and the problem."""


@dataclass
class Reproduction:
    paper: str
    data: str
    budget_name: str
    work: Path
    results: Path
    contrast: str = "T1w"
    shared: Path = SHARED_DATA
    only: tuple[str, ...] = ()  # row keys or run names to restrict to (default: all)
    progress: bool = True  # each command's own progress bar (with its ETA)
    phantom: Path | None = None  # an existing jaxuad-phantom folder (default: generate one)
    failures: dict[str, str] = dataclasses.field(default_factory=dict)  # tag -> error, this run

    @property
    def budget(self) -> Budget:
        return BUDGETS[(self.paper, self.data, self.budget_name)]

    @property
    def name(self) -> str:
        data = self.data if self.data == "real" else f"phantom-{self.contrast}"
        return f"{self.paper}-{data}-{self.budget_name}"

    def rows(self) -> list[Row]:
        rows = BAUR_ROWS if self.paper == "baur" else CHEN_ROWS
        if self.only:
            rows = [r for r in rows if row_key(r) in self.only or r.run in self.only]
        return rows

    @property
    def _quiet(self) -> tuple[str, ...]:
        return () if self.progress else ("--no-progress",)

    def _done(self, name: str) -> Path:
        """The marker a finished step ``name`` leaves (its presence skips the step)."""
        return self.work / ".done" / name

    # -- data ---------------------------------------------------------------------------

    def _healthy_and_test(self) -> tuple[Path, Path]:
        if self.data == "real":
            return self.shared / "ixi", self.shared / "mslub"
        root = self.phantom or self.work / "phantom"
        return root / "healthy", root / "lesion"

    def split(self) -> tuple[list[str], list[str]]:
        """(training, held-out) healthy subject ids: the last ``holdout`` in sorted order."""
        from jaxuad.data import discover

        healthy, _ = self._healthy_and_test()
        ids = sorted(s.id for s in discover(healthy, self.contrast))
        b = self.budget
        if len(ids) <= b.holdout:
            raise ReproduceError(f"{healthy}: {len(ids)} subjects, need more than {b.holdout}")
        train, held = ids[: -b.holdout], ids[-b.holdout :]
        if b.train_subjects is not None:
            train = train[: b.train_subjects]
        if b.threshold_subjects is not None:
            held = held[: b.threshold_subjects]
        return train, held

    def _manifest(self, name: str, ids: list[str]) -> Path:
        healthy, _ = self._healthy_and_test()
        healthy = healthy.resolve()  # a manifest's relative paths are read from its folder
        path = self.work / f"{name}.csv"
        rows = [
            [
                i,
                healthy / f"sub-{i}_{self.contrast}.nii.gz",
                healthy / f"sub-{i}_brainmask.nii.gz",
                "",
            ]
            for i in ids
        ]
        write_text(_csv(["subject", "image", "brainmask", "lesion"], rows), path)
        return path

    # -- the plan -------------------------------------------------------------------------

    def _train_overrides(self) -> list[str]:
        b = self.budget
        sets = []
        if b.epochs is not None:
            sets.append(f"train.epochs={b.epochs}")
        if b.learning_rate is not None:
            sets.append(f"train.learning_rate={b.learning_rate:g}")
        if b.slices.startswith("middle:"):
            sets += ["data.slices=middle", f"data.n_slices={b.slices.split(':')[1]}"]
        return [a for s in sets for a in ("--set", s)]

    def _restore_overrides(self, method: str) -> list[str]:
        b = self.budget
        if method == "reconstruction":
            return []
        values = {"anogan_steps": b.anogan_steps}
        if method != "anogan":
            values = {
                "steps": b.steps,
                "learning_rate": b.restore_learning_rate,
                "samples": b.samples,
                "anogan_steps": b.anogan_steps,
                "calibrate_slices": b.calibrate_slices,
                "lam_grid": b.lam_grid,
            }
        sets = [f"restore.{k}={v}" for k, v in values.items() if v is not None]
        return [a for s in sets for a in ("--set", s)]

    def data_steps(self) -> list[Step]:
        """Generating the phantom (nothing for real scans or a given ``phantom``)."""
        steps: list[Step] = []
        b = self.budget
        if self.data == "phantom" and self.phantom is None:
            root = self.work / "phantom"
            steps.append(
                Step(
                    (
                        "jaxuad-phantom", "--out", str(root), "--n-healthy",
                        str(b.phantom_healthy), "--n-lesion", str(b.phantom_lesion),
                        "--seed", "0", "--overwrite", *self._quiet,
                    ),
                    self._done("phantom"),
                )
            )  # fmt: skip
        return steps

    def experiment_steps(self) -> list[Step]:
        """Training, calibration, restoration and evaluation. Needs the data to exist (run
        after :meth:`data_steps`); writes the split manifests."""
        train_ids, held_ids = self.split()
        train_csv = self._manifest("train", train_ids)
        held_csv = self._manifest("heldout", held_ids)
        _, test = self._healthy_and_test()
        runs = BAUR_RUNS if self.paper == "baur" else CHEN_RUNS
        done = self._done
        mod = ["--modality", self.contrast]
        steps = []
        rows = self.rows()
        for run in dict.fromkeys(r.run for r in rows):
            model, variant = runs[run]
            variant = (
                f"{variant}-smoke" if variant and self.budget.variant == "smoke" else variant
            ) or self.budget.variant
            wd = self.work / run
            argv = ["jaxuad-train", "--model", model, "--variant", variant, "--data"]
            argv += [str(train_csv), *mod, "--workdir", str(wd), *self._train_overrides()]
            steps.append(
                Step((*argv, *self._quiet), done(f"train-{run}"), wd / "checkpoints", (run,))
            )
        for row in rows:
            wd, key = self.work / row.run, row_key(row)
            sets = self._restore_overrides(row.method)
            method = ["--method", row.method] + (["--prior", row.prior] if row.prior else [])
            if row.prior:
                steps.append(
                    Step(
                        ("jaxuad-restore", "--calibrate", "--workdir", str(wd), "--data",
                         str(held_csv), *method, *sets, *self._quiet),
                        done(f"calibrate-{key}"),
                        tags=(row.run, key),
                    )
                )  # fmt: skip
            preds = {}
            for part, data in (("healthy", held_csv), ("test", test)):
                preds[part] = self.work / "pred" / key / part
                steps.append(
                    Step(
                        ("jaxuad-restore", "--workdir", str(wd), "--data", str(data), *mod,
                         "--out", str(preds[part]), "--overwrite", *method, *sets,
                         *self._quiet),
                        done(f"restore-{key}-{part}"),
                        tags=(row.run, key),
                    )
                )  # fmt: skip
            steps.append(
                Step(
                    ("jaxuad-evaluate", "--pred", str(preds["test"]), "--data", str(test),
                     *mod, "--healthy", str(preds["healthy"]), "--out",
                     str(self.work / "eval" / key), *self._quiet),
                    done(f"evaluate-{key}"),
                    tags=(row.run, key),
                )
            )  # fmt: skip
        return steps

    # -- running --------------------------------------------------------------------------

    def run(self, log: Callable[[str], None] = print) -> Path:
        """Runs (or resumes) every step, then writes the results folder. Returns it."""
        self.work.mkdir(parents=True, exist_ok=True)
        (self.work / ".done").mkdir(exist_ok=True)
        self.results.mkdir(parents=True, exist_ok=True)
        timings = _load_json(self.results / "timings.json", default={})
        commands = self.results / "commands.sh"
        t_start = time.perf_counter()

        stamped: list[bool] = []

        def execute(steps: list[Step], offset: int, total: int | None) -> None:
            for i, step in enumerate(steps, offset + 1):
                argv = list(step.argv)
                if step.resume is not None and step.resume.is_dir() and any(step.resume.iterdir()):
                    argv.append("--resume")
                shown = shlex.join(argv)
                of = f"/{total}" if total else ""
                elapsed = tqdm.format_interval(time.perf_counter() - t_start)
                if step.done.exists():
                    log(f"[{i}{of} {elapsed}] done already: {shown}")
                    continue
                failed = [t for t in step.tags if t in self.failures]
                if failed:
                    log(f"[{i}{of} {elapsed}] skipped ({failed[0]} failed): {shown}")
                    continue
                log(f"[{i}{of} {elapsed}] {shown}")
                with commands.open("a") as f:
                    if not stamped:  # which code ran the commands that follow
                        now = datetime.datetime.now().isoformat(timespec="seconds")
                        f.write(f"# {now} commit {git_commit()} device {_device()}\n")
                        stamped.append(True)
                    f.write(shown + "\n")
                t0 = time.perf_counter()
                try:
                    run_command(argv)
                except ReproduceError as e:
                    if not step.tags:
                        raise
                    log(f"error: {e}")
                    self.failures[step.tags[-1]] = str(e)
                    continue
                timings[shown] = time.perf_counter() - t0
                write_json(timings, self.results / "timings.json")
                step.done.write_text(f"{datetime.datetime.now().isoformat()}\n")

        if not commands.exists():
            commands.write_text(
                "# jaxuad commands run by this reproduction, in order (appended on resume)\n"
            )
        first = self.data_steps()
        execute(first, 0, None)
        rest = self.experiment_steps()
        execute(rest, len(first), len(first) + len(rest))
        self.write_results()
        log(f"results: {self.results} ({tqdm.format_interval(time.perf_counter() - t_start)})")
        return self.results

    # -- results --------------------------------------------------------------------------

    def _header(self) -> list[str]:
        from jaxuad.data import discover

        train_ids, held_ids = self.split()
        _, test = self._healthy_and_test()
        n_test = len(discover(test, self.contrast))
        data = (
            f"IXI T1 ({len(train_ids)} training subjects, {len(held_ids)} held out for "
            f"thresholds{' and lambda' if self.paper == 'chen' else ''}) -> MSLUB T1 "
            f"({n_test} patients)"
            if self.data == "real"
            else f"phantom, {self.contrast} contrast ({len(train_ids)} training, "
            f"{len(held_ids)} held-out healthy subjects, {n_test} with lesions)"
        )
        return [
            f"# {self.name}",
            "",
            f"- data: {data}",
            f"- budget `{self.budget_name}`: {self.budget.describe()}; all else as in the paper "
            f"(holdout = healthy subjects never trained on)",
            f"- commands run at commit {', '.join(self._commits()) or 'unrecorded'}; table "
            f"written at commit {git_commit()}, device {_device()}. Every command is in "
            "`commands.sh`, its wall time in `timings.json`",
            "",
        ]

    def _commits(self) -> list[str]:
        """The commits (and devices) that ran this reproduction's commands (commands.sh)."""
        lines = (self.results / "commands.sh").read_text().splitlines()
        stamps = [
            ln.split(" commit ", 1)[1] for ln in lines if ln.startswith("# ") and " commit " in ln
        ]
        return list(dict.fromkeys(stamps))

    def _metrics(self) -> list[tuple[Row, dict]]:
        """(row, metrics) for every row whose evaluation finished."""
        out = []
        for row in self.rows():
            path = self.work / "eval" / row_key(row) / "metrics.json"
            if path.is_file() and self._done(f"evaluate-{row_key(row)}").exists():
                out.append((row, json.loads(path.read_text())))
        return out

    def _failed_rows(self) -> list[str]:
        """One line per row without results, with the error that stopped it."""
        lines = []
        for row in self.rows():
            key = row_key(row)
            if self._done(f"evaluate-{key}").exists():
                continue
            why = self.failures.get(key) or self.failures.get(row.run) or "not run"
            lines.append(f"- **{row.label}** ({key}): no result. {why}")
        return lines

    def write_results(self) -> None:
        from jaxuad.report import baur_table, chen_table

        rows = self._metrics()
        for row, _ in rows:
            src, dst = self.work / "eval" / row_key(row), self.results / "rows" / row_key(row)
            dst.mkdir(parents=True, exist_ok=True)
            for f in src.iterdir():
                if f.suffix in (".json", ".md", ".png"):
                    shutil.copy2(f, dst / f.name)
        labelled = []
        for row, m in rows:
            m = dict(m, name=row.label, method=row.label, model=None, prior=row.prior)
            labelled.append(m)
        if self.paper == "baur":
            table = [
                "Baur et al. 2018, Table 1 layout: Dice per patient (mean ± std over test "
                "subjects) after 3D post-processing at the 98th percentile of held-out healthy "
                "residuals; time = restoration seconds per slice.",
                "",
                *baur_table(labelled),
            ]
        else:
            table = [
                "Chen et al. 2019, Table 1 layout: Dice (mean over test subjects) at the "
                "thresholds whose false-positive rate on held-out healthy brain voxels is at "
                "most 0.1/0.5/1/5 %; voxel AUROC; seconds per iteration per image.",
                "",
                *chen_table(labelled),
            ]
        failed = self._failed_rows()
        if failed:
            table += ["", "Rows without results:", "", *failed]
        figures = []
        if rows:
            figures = ["", "![Dice](dice.png)", "", "![residuals](residuals.png)"]
            self._figures([r for r, _ in rows], labelled)
        text = "\n".join([*self._header(), *table, *figures, "", *claims(self.paper, rows)])
        write_text(text + "\n", self.results / "table.md")

    def _figures(self, rows_done: list[Row], labelled: list[dict]) -> None:
        """dice.png (the table as a chart) and residuals.png (one lesion slice, every row)."""
        from jaxuad.data import discover, load_volume
        from jaxuad.data.nifti import read_nifti
        from jaxuad.report import dice_chart, residual_gallery

        levels = None if self.paper == "baur" else labelled[0]["settings"]["fpr_levels"]
        dice_chart(self.results / "dice.png", self.name, labelled, levels)
        # The test subject with the most lesion voxels, at the table's threshold.
        sid = max(labelled[0]["subjects"], key=lambda r: r["lesion_voxels"])["subject"]
        _, test = self._healthy_and_test()
        (s,) = [s for s in discover(test, self.contrast) if s.id == sid]
        vol = load_volume(s.id, s.image, s.brainmask, s.lesion)
        key = "percentile" if self.paper == "baur" else "fpr1"
        rows = []
        for row, m in zip(rows_done, labelled, strict=True):
            filtered, *_ = read_nifti(
                self.work / "eval" / row_key(row) / f"sub-{sid}_filtered.nii.gz"
            )
            label = row.label + (f" {row.prior.upper()}" if row.prior else "")
            at = m["at_threshold"][key]
            rows.append((label, filtered, at["threshold"], _subject_dice(m, sid, key)))
        image, *_ = read_nifti(
            self.work / "pred" / row_key(rows_done[0]) / "test" / f"sub-{sid}_normalized.nii.gz"
        )
        residual_gallery(
            self.results / "residuals.png",
            f"{self.name}: {sid}, threshold {key}",
            image,
            vol.lesion,
            rows,
        )


# -- claims -------------------------------------------------------------------------------


def _subject_dice(m: dict, subject: str, threshold: str) -> float:
    (row,) = [r for r in m["subjects"] if r["subject"] == subject]
    return row[f"dice_{threshold}"]


def _dice(m: dict, threshold: str = "percentile") -> float:
    return m["at_threshold"][threshold]["dice_mean"]


def claims(paper: str, rows: list[tuple[Row, dict]]) -> list[str]:
    """Which of the paper's claims hold on this run, each with its numbers.

    A claim "A better than B" holds at a threshold when every listed pair has a strictly
    higher mean Dice for A; the pairs and their Dice are printed beside the verdict.
    """
    by = {row_key(r): m for r, m in rows}
    lines = ["## The paper's claims on this run", ""]

    def claim(name: str, pairs: list[tuple[str, str]], thresholds: tuple[str, ...]) -> None:
        have = [(a, b) for a, b in pairs if a in by and b in by]
        if not have:
            lines.append(f"- {name}: not measured (rows missing)")
            return
        parts = []
        for t in thresholds:
            cmp = [(a, b, _dice(by[a], t), _dice(by[b], t)) for a, b in have]
            ok = all(x > y for *_, x, y in cmp)
            detail = "; ".join(f"{a} {x:.3f} vs {b} {y:.3f}" for a, b, x, y in cmp)
            parts.append(f"at {t}: **{'holds' if ok else 'does not hold'}** ({detail})")
        lines.append(f"- {name}: " + "; ".join(parts))

    if paper == "baur":
        rec = "-reconstruction"
        spatial = [("sae", "dae"), ("svae", "dvae")]
        adversarial = [("sae_gan", "sae"), ("anovaegan", "svae")]
        claim(
            "spatial better than dense", [(a + rec, b + rec) for a, b in spatial], ("percentile",)
        )
        claim(
            "adversarial training helps",
            [(a + rec, b + rec) for a, b in adversarial],
            ("percentile",),
        )
        return lines
    low = ("fpr0.1", "fpr0.5", "fpr1")
    priors = ("tv", "l1")
    claim(
        "LG(neural) better than MAP",
        [(f"vae_chen-lg_neural-{p}", f"vae_chen-map-{p}") for p in priors],
        low,
    )
    claim(
        "MAP better than reconstruction",
        [(f"vae_chen-map-{p}", "vae_chen-reconstruction") for p in priors],
        low,
    )
    claim(
        "TV better than L1",
        [(row_key(r), row_key(r)[:-2] + "l1") for r in CHEN_ROWS if r.prior == "tv"],
        ("fpr0.1", "fpr1"),
    )
    return lines


# -- helpers ------------------------------------------------------------------------------


def run_command(argv: list[str]) -> None:
    """Runs one jaxuad command line in this process; raises :class:`ReproduceError`."""
    from jaxuad.cli import evaluate, phantom, restore, train
    from jaxuad.config import ConfigError
    from jaxuad.data import DataError

    mains = {
        "jaxuad-train": train.main,
        "jaxuad-restore": restore.main,
        "jaxuad-evaluate": evaluate.main,
        "jaxuad-phantom": phantom.main,
    }
    shown = " ".join(argv)
    try:
        rc = mains[argv[0]](argv[1:])
    except SystemExit as e:  # argparse
        rc = e.code
    except (DataError, ConfigError) as e:
        raise ReproduceError(f"{shown}: {e}") from None
    except Exception as e:  # a training divergence, an I/O error: name the step
        raise ReproduceError(f"{shown}: {type(e).__name__}: {e}") from e
    if rc:
        raise ReproduceError(f"{shown}: exit code {rc}")


CODE_PATHS = ("jaxuad", "configs", "bin", "pyproject.toml")  # what decides a result


def git_commit(root: Path | None = None) -> str:
    """Short hash of the checkout at ``root`` (default: the current folder), with ``-dirty``
    when the code (:data:`CODE_PATHS`; not the README or tests) differs from it; "unknown"
    outside a git checkout."""
    root = root or Path.cwd()
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def default_results(date: datetime.date | None = None) -> Path:
    date = date or datetime.date.today()
    return Path("results") / f"{date.isoformat()}-{git_commit()}"


def _device() -> str:
    import jax

    d = jax.devices()[0]
    return f"{d.platform} ({d.device_kind})"


def _csv(header: list[str], rows: list[list]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows([[str(c) for c in r] for r in rows])
    return buf.getvalue()


def _load_json(path: Path, default):
    return json.loads(path.read_text()) if path.is_file() else default
