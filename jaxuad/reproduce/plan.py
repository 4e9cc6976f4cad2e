"""A reproduction: its steps (planned from a protocol and budget), their run, its tables."""

from __future__ import annotations

import dataclasses
import datetime
import shlex
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from jaxuad.config import Changes, RestoreConfig
from jaxuad.core.io import write_json, write_text
from jaxuad.reproduce.claims import claims
from jaxuad.reproduce.commands import Calibrate, Evaluate, MakePhantom, Restore, Train
from jaxuad.reproduce.protocols import Budget, Protocol, Row, load_protocol, row_key
from jaxuad.reproduce.runner import (
    ReproduceError,
    Step,
    csv_text,
    device_name,
    git_commit,
    load_json,
    run_command,
)
from jaxuad.restore.methods import method_spec

if TYPE_CHECKING:
    from jaxuad.evaluate import EvalResult


@dataclass
class Reproduction:
    """One paper's protocol on one data set and budget: its steps, their run, its tables."""

    paper: str
    data: str
    budget_name: str
    work: Path
    results: Path
    contrast: str = "T1w"
    shared: Path | None = None  # folder with ixi/ and mslub/ (real scans only)
    only: tuple[str, ...] = ()  # row keys or run names to restrict to (default: all)
    progress: bool = True  # each command's own progress bar (with its ETA)
    phantom: Path | None = None  # an existing jaxuad-phantom folder (default: generate one)
    failures: dict[str, str] = dataclasses.field(default_factory=dict)  # tag -> error, this run

    @property
    def protocol(self) -> Protocol:
        return load_protocol(self.paper)

    @property
    def budget(self) -> Budget:
        return self.protocol.budget(self.data, self.budget_name)

    @property
    def name(self) -> str:
        data = self.data if self.data == "real" else f"phantom-{self.contrast}"
        return f"{self.paper}-{data}-{self.budget_name}"

    def rows(self) -> list[Row]:
        rows = list(self.protocol.rows)
        if self.only:
            rows = [r for r in rows if row_key(r) in self.only or r.run in self.only]
        return rows

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
        write_text(csv_text(["subject", "image", "brainmask", "lesion"], rows), path)
        return path

    # -- the plan -------------------------------------------------------------------------

    def _train_changes(self) -> Changes:
        b, train, data = self.budget, {}, {}
        if b.epochs is not None:
            train["epochs"] = b.epochs
        if b.learning_rate is not None:
            train["learning_rate"] = b.learning_rate
        if b.slices.startswith("middle:"):
            data = {"slices": "middle", "n_slices": int(b.slices.split(":")[1])}
        return {k: v for k, v in (("train", train), ("data", data)) if v}

    def _restore_changes(self, method: str) -> Changes:
        b, spec = self.budget, method_spec(method)
        if not spec.network or spec.iterations(RestoreConfig()) == 1:
            return {}
        values = {"anogan_steps": b.anogan_steps}  # the latent search's
        if spec.needs_lambda:
            values = {
                "steps": b.steps,
                "learning_rate": b.restore_learning_rate,
                "samples": b.samples,
                "anogan_steps": b.anogan_steps,
                "calibrate_slices": b.calibrate_slices,
                "lam_grid": b.lam_grid,
            }
        values = {k: v for k, v in values.items() if v is not None}
        return {"restore": values} if values else {}

    def _evaluate_changes(self, row: Row) -> Changes:
        """What a method's rows evaluate with on this contrast (the intensity baseline scores
        the intensity itself: its negative on T1, the intensity on FLAIR and T2)."""
        values = method_spec(row.method).evaluate(self.contrast)
        return {"evaluate": dict(values)} if values else {}

    def data_steps(self) -> list[Step]:
        """Generating the phantom (nothing for real scans or a given ``phantom``)."""
        b = self.budget
        if self.data != "phantom" or self.phantom is not None:
            return []
        make = MakePhantom(self.progress, self.work / "phantom", b.phantom_healthy,
                           b.phantom_lesion)  # fmt: skip
        return [Step(make, self._done("phantom"))]

    def experiment_steps(self) -> list[Step]:
        """Training, calibration, restoration and evaluation. Needs the data to exist (run
        after :meth:`data_steps`); writes the split manifests."""
        train_ids, held_ids = self.split()
        train_csv = self._manifest("train", train_ids)
        held_csv = self._manifest("heldout", held_ids)
        _, test = self._healthy_and_test()
        runs = self.protocol.runs
        done, show, mod = self._done, self.progress, self.contrast
        steps = []
        rows = self.rows()
        for run in dict.fromkeys(r.run for r in rows if r.run in runs):
            model, variant = runs[run]
            variant = (
                f"{variant}-smoke" if variant and self.budget.variant == "smoke" else variant
            ) or self.budget.variant
            wd = self.work / run
            command = Train(show, model, variant, train_csv, mod, wd, self._train_changes())
            steps.append(Step(command, done(f"train-{run}"), wd / "checkpoints", (run,)))
        for row in rows:
            wd, key, tags = self.work / row.run, row_key(row), (row.run, row_key(row))
            changes = self._restore_changes(row.method)
            if row.prior:
                command = Calibrate(show, wd, held_csv, row.method, row.prior, changes)
                steps.append(Step(command, done(f"calibrate-{key}"), tags=tags))
            preds = {}
            for part, data in (("healthy", held_csv), ("test", test)):
                preds[part] = self.work / "pred" / key / part
                command = Restore(show, wd if row.run in runs else None, data, mod,
                                  preds[part], row.method, row.prior, changes)  # fmt: skip
                steps.append(Step(command, done(f"restore-{key}-{part}"), tags=tags))
            command = Evaluate(show, preds["test"], test, mod, preds["healthy"],
                               self.work / "eval" / key, self._evaluate_changes(row))  # fmt: skip
            steps.append(Step(command, done(f"evaluate-{key}"), tags=tags))
        return steps

    # -- running --------------------------------------------------------------------------

    def run(self, log: Callable[[str], None] = print) -> Path:
        """Runs (or resumes) every step, then writes the results folder. Returns it."""
        self.work.mkdir(parents=True, exist_ok=True)
        (self.work / ".done").mkdir(exist_ok=True)
        self.results.mkdir(parents=True, exist_ok=True)
        timings = load_json(self.results / "timings.json", default={})
        commands = self.results / "commands.sh"
        t_start = time.perf_counter()

        stamped: list[bool] = []

        def execute(steps: list[Step], offset: int, total: int | None) -> None:
            for i, step in enumerate(steps, offset + 1):
                resume = bool(
                    step.resume is not None and step.resume.is_dir() and any(step.resume.iterdir())
                )
                shown = shlex.join(step.command.argv() + (["--resume"] if resume else []))
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
                        f.write(f"# {now} commit {git_commit()} device {device_name()}\n")
                        stamped.append(True)
                    f.write(shown + "\n")
                t0 = time.perf_counter()
                try:
                    run_command(step.command, resume)
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
            f"written at commit {git_commit()}, device {device_name()}. Every command is in "
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

    def _metrics(self) -> list[tuple[Row, EvalResult]]:
        """(row, metrics) for every row whose evaluation finished."""
        from jaxuad.evaluate import EvalResult

        out = []
        for row in self.rows():
            path = self.work / "eval" / row_key(row) / "metrics.json"
            if path.is_file() and self._done(f"evaluate-{row_key(row)}").exists():
                out.append((row, EvalResult.read(path)))
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
        """Copies each finished row's report and writes ``table.md`` with its figures and claims."""
        from jaxuad.report import baur_table, chen_table

        rows = self._metrics()
        for row, _ in rows:
            src, dst = self.work / "eval" / row_key(row), self.results / "rows" / row_key(row)
            dst.mkdir(parents=True, exist_ok=True)
            for f in src.iterdir():
                if f.suffix in (".json", ".md", ".png"):
                    shutil.copy2(f, dst / f.name)
        labelled = [
            dataclasses.replace(m, name=row.label, method=row.label, model=None, prior=row.prior)
            for row, m in rows
        ]
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
        text = "\n".join([*self._header(), *table, *figures, "", *claims(self.protocol, rows)])
        write_text(text + "\n", self.results / "table.md")

    def _figures(self, rows_done: list[Row], labelled: list[EvalResult]) -> None:
        """dice.png (the table as a chart) and residuals.png (one lesion slice, every row)."""
        from jaxuad.data import discover, load_volume
        from jaxuad.data.nifti import read_nifti
        from jaxuad.report import dice_chart, residual_gallery

        levels = None if self.paper == "baur" else labelled[0].settings["fpr_levels"]
        dice_chart(self.results / "dice.png", self.name, labelled, levels)
        # The test subject with the most lesion voxels, at the table's threshold.
        sid = max(labelled[0].subjects, key=lambda r: r.lesion_voxels).subject
        _, test = self._healthy_and_test()
        (s,) = [s for s in discover(test, self.contrast) if s.id == sid]
        vol = load_volume(s.id, s.image, s.brainmask, s.lesion)
        key = self.protocol.threshold
        rows = []
        for row, m in zip(rows_done, labelled, strict=True):
            filtered, *_ = read_nifti(
                self.work / "eval" / row_key(row) / f"sub-{sid}_filtered.nii.gz"
            )
            label = row.label + (f" {row.prior.upper()}" if row.prior else "")
            at = m.at_threshold[key]
            rows.append((label, filtered, at.threshold, m.subject(sid).dice[key]))
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
