"""bin/reproduce-baur and bin/reproduce-chen: protocol splits, claims, and smoke runs end to end."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from jaxuad.reproduce import Reproduction, Row, claims, load_protocol, row_key

BAUR, CHEN = load_protocol("baur"), load_protocol("chen")

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.mark.skipif(not (SHARED / "ixi").is_dir(), reason="../shared/data/ixi not present")
@pytest.mark.parametrize("paper", ["baur", "chen"])
@pytest.mark.parametrize("budget", ["small", "paper"])
def test_real_split_holds_out_20_subjects(tmp_path, paper, budget):
    r = Reproduction(paper, "real", budget, work=tmp_path, results=tmp_path, shared=SHARED)
    train, held = r.split()
    b = load_protocol(paper).budget("real", budget)
    assert not set(train) & set(held)
    assert len(held) == (b.threshold_subjects or 20)
    n_ixi = len(list((SHARED / "ixi").glob("sub-*_T1w.nii.gz")))
    assert len(train) == (b.train_subjects or n_ixi - 20)
    # The held-out subjects are the last 20 in sorted order whatever the budget.
    all_ids = sorted(p.name.split("_")[0][4:] for p in (SHARED / "ixi").glob("sub-*_T1w.nii.gz"))
    assert set(held) <= set(all_ids[-20:])


def _metrics(dice: dict[str, float], auroc: float = 0.5):
    """An EvalResult with the given mean Dice per threshold and AUROC (AUPRC = AUROC / 2);
    claims read nothing else."""
    from jaxuad.evaluate import EvalResult, ThresholdScores

    nan = float("nan")
    at = {t: ThresholdScores(nan, nan, d, nan, nan, nan, nan, nan, 0, 0) for t, d in dice.items()}
    return EvalResult(at, (), "percentile", auroc, nan, auroc / 2, nan, nan, 0, 0, 0, {}, {})


def test_claims_report_each_pair_and_verdict():
    dice = {"percentile": 0.5}
    rows = [
        (Row("dAE", "dae", "reconstruction"), _metrics({"percentile": 0.2})),
        (Row("sAE", "sae", "reconstruction"), _metrics({"percentile": 0.3})),
        (Row("dVAE", "dvae", "reconstruction"), _metrics({"percentile": 0.4})),
        (Row("sVAE", "svae", "reconstruction"), _metrics(dice)),
        (Row("AE-GAN", "sae_gan", "reconstruction"), _metrics({"percentile": 0.1})),
    ]
    text = "\n".join(claims(BAUR, rows))
    assert "spatial better than dense: at percentile: **holds**" in text
    assert "sae-reconstruction 0.300 vs dae-reconstruction 0.200" in text
    assert "svae-reconstruction 0.500 vs dvae-reconstruction 0.400" in text
    # sae_gan < sae: adversarial training does not help (anovaegan row absent: pair skipped).
    assert "adversarial training helps: at percentile: **does not hold**" in text
    assert "anovaegan" not in text
    # A single counter-example breaks a claim; a missing row leaves it unmeasured.
    rows[1] = (Row("sAE", "sae", "reconstruction"), _metrics({"percentile": 0.2}))
    assert "spatial better than dense: at percentile: **does not hold**" in "\n".join(
        claims(BAUR, rows)
    )
    chen = "\n".join(claims(CHEN, []))
    assert chen.count("not measured") == 4  # three claims, and the baselines


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data")
@pytest.mark.parametrize("paper", ["baur", "chen"])
def test_every_table_has_the_baselines_run_through_the_same_pipeline(paper, tmp_path):
    r = Reproduction(paper, "real", "smoke", work=tmp_path, results=tmp_path, shared=SHARED)
    steps = [" ".join(s.command.argv()) for s in r.experiment_steps()]
    assert [s for s in steps if "--model atlas" in s]  # the atlas is trained once
    intensity = [s for s in steps if "--method intensity" in s]
    assert len(intensity) == 2 and not [s for s in intensity if "--workdir" in s]
    (ev,) = [s for s in steps if s.startswith("jaxuad-evaluate") and "/intensity " in s + " "]
    assert "evaluate.residual_sign=negative" in ev  # T1: MS lesions are hypointense
    (atlas_ev,) = [s for s in steps if s.startswith("jaxuad-evaluate") and "eval/atlas" in s]
    assert "residual_sign" not in atlas_ev  # |z|, both signs


def test_best_model_is_read_against_each_baseline():
    rows = [
        (Row("sAE", "sae", "reconstruction"), _metrics({"percentile": 0.3}, auroc=0.8)),
        (Row("dAE", "dae", "reconstruction"), _metrics({"percentile": 0.4}, auroc=0.7)),
        (Row("intensity", "intensity", "intensity"), _metrics({"percentile": 0.2}, auroc=0.75)),
        (Row("atlas", "atlas", "atlas"), _metrics({"percentile": 0.35}, auroc=0.6)),
    ]
    text = "\n".join(claims(BAUR, rows))
    assert "best model (sae-reconstruction) beats the intensity baseline: **yes**" in text
    assert "AUROC 0.800 vs 0.750 (+0.050)" in text
    assert "beats the atlas baseline: **no** (" in text  # Dice 0.30 < 0.35
    assert "Dice at percentile 0.300 vs 0.350 (-0.050)" in text


def test_chen_rows_cover_every_method_and_prior():
    keys = {row_key(r) for r in CHEN.rows}
    for method in ("vae_chen-map", "gmvae-gmvae_map", "vae_chen-lg_est", "vae_chen-lg_neural"):
        assert {f"{method}-tv", f"{method}-l1"} <= keys
    assert {"aae-lg_neural-tv", "aae-lg_neural-l1", "vae_chen-reconstruction"} <= keys
    assert "aae-reconstruction" in keys


def _main(paper: str, argv: list[str]) -> None:
    from jaxuad.reproduce.cli import main

    assert main(paper, argv) == 0


@pytest.fixture(scope="module")
def baur_smoke(tmp_path_factory, phantom_dir):
    root = tmp_path_factory.mktemp("reproduce")
    argv = ["--budget", "smoke", "--data", "phantom", "--contrast", "FLAIR", "--no-progress"]
    argv += ["--work", str(root / "work"), "--results", str(root / "results")]
    argv += ["--only", "sae", "--phantom", str(phantom_dir)]  # one run keeps it quick
    _main("baur", argv)
    return root, argv, root / "results" / "baur-phantom-FLAIR-smoke"


def test_baur_smoke_writes_table_from_each_rows_metrics(baur_smoke):
    _, _, results = baur_smoke
    table = (results / "table.md").read_text()
    for key, label in (("sae-reconstruction", "sAE (16x16 bottleneck)"),):
        m = json.loads((results / "rows" / key / "metrics.json").read_text())
        s = m["summary"]
        assert f"| {label} | {m['latent']} | {s['dice_mean']:.4f} ± {s['dice_std']:.4f} |" in table
        assert (results / "rows" / key / "histogram.png").is_file()
        assert not list((results / "rows" / key).glob("*.nii.gz"))  # volumes stay in work
    assert "budget `smoke`: epochs=1" in table
    assert (results / "dice.png").is_file() and (results / "residuals.png").is_file()
    assert "spatial better than dense: not measured" in table  # claims: tested above
    assert "| dAE |" not in table  # --only


def test_baur_smoke_commands_are_the_cli(baur_smoke):
    """commands.sh holds the jaxuad command lines that ran, in order, with their options."""
    _, _, results = baur_smoke
    lines = [c for c in (results / "commands.sh").read_text().splitlines() if c[:1] != "#"]
    assert [shlex.split(c)[0] for c in lines] == [
        "jaxuad-train",
        *["jaxuad-restore", "jaxuad-restore", "jaxuad-evaluate"],
    ]
    train = shlex.split(lines[0])
    assert train[train.index("--model") + 1] == "sae" and "train.epochs=1" in train


def test_baur_smoke_rerun_skips_finished_steps(baur_smoke):
    root, argv, results = baur_smoke
    commands = (results / "commands.sh").read_text()
    table = (results / "table.md").read_text()
    # Losing one step's marker (a kill during it) re-runs that step only.
    (root / "work" / "baur-phantom-FLAIR-smoke" / ".done" / "evaluate-sae-reconstruction").unlink()
    _main("baur", argv)
    again = (results / "commands.sh").read_text()
    assert again.startswith(commands)
    stamp, *added = again[len(commands) :].splitlines()
    assert stamp.startswith("# ") and " commit " in stamp  # which code ran what follows
    assert len(added) == 1 and added[0].startswith("jaxuad-evaluate") and "/sae-" in added[0]
    assert (results / "table.md").read_text() == table  # same metrics, same table


def test_chen_smoke_calibrates_and_reports_seconds_per_iteration(
    tmp_path, phantom_dir, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # relative folders, as bin/reproduce-* uses by default
    phantom = os.path.relpath(phantom_dir, tmp_path)
    argv = ["--budget", "smoke", "--data", "phantom", "--contrast", "T1w", "--no-progress"]
    argv += ["--work", "work", "--results", "results", "--only", "vae_chen-map-tv"]
    argv += ["--phantom", phantom]
    _main("chen", argv)
    results = tmp_path / "results" / "chen-phantom-T1w-smoke"
    table = (results / "table.md").read_text()
    cal = json.loads(
        (tmp_path / "work" / "chen-phantom-T1w-smoke" / "vae_chen" / "calibration.json").read_text()
    )
    assert any("map" in k and "tv" in k for k in cal)
    m = json.loads((results / "rows" / "vae_chen-map-tv" / "metrics.json").read_text())
    assert m["seconds_per_iteration"] > 0 and m["prior"] == "tv"
    assert "| VAE-MAP | tv |" in table and f"{m['seconds_per_iteration']:.4f} |" in table
    assert "LG(neural) better than MAP: not measured" in table


def test_missing_real_data_is_a_one_line_error(tmp_path):
    cmd = [sys.executable, "-m", "jaxuad.reproduce.cli", "baur", "--data", "real"]
    cmd += ["--shared", str(tmp_path / "nowhere"), "--work", str(tmp_path / "w")]
    p = subprocess.run(cmd, capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stderr.strip() == (
        f"error: {tmp_path / 'nowhere' / 'ixi'}: not found; real scans are needed for "
        "--data real (or run --data phantom)"
    )
    assert not (tmp_path / "w").exists()


def test_failed_training_skips_its_rows_only_and_is_reported(tmp_path, phantom_dir, monkeypatch):
    """A diverged run: its later steps are skipped, other runs go on, the table says why."""
    import jaxuad.reproduce as rp
    from jaxuad.reproduce.cli import EXIT_FAILED_ROWS, main

    ran = []

    def fake(command, resume=False):
        argv = command.argv()
        ran.append(argv)
        if argv[0] == "jaxuad-train" and argv[argv.index("--model") + 1] == "sae":
            raise rp.ReproduceError("jaxuad-train ...: TrainingDiverged: non-finite loss")

    monkeypatch.setattr(rp.plan, "run_command", fake)
    argv = ["--budget", "smoke", "--data", "phantom", "--contrast", "FLAIR", "--no-progress"]
    argv += ["--work", str(tmp_path / "w"), "--results", str(tmp_path / "r")]
    assert main("baur", [*argv, "--only", "dae", "sae", "--phantom", str(phantom_dir)]) == (
        EXIT_FAILED_ROWS
    )
    trained = [a[a.index("--model") + 1] for a in ran if a[0] == "jaxuad-train"]
    assert trained == ["dae", "sae"]
    assert not [a for a in ran if a[0] != "jaxuad-train" and "/sae-" in " ".join(a)]
    assert len([a for a in ran if "/dae-" in " ".join(a)]) == 3  # 2 restores + evaluate
    table = (tmp_path / "r" / "baur-phantom-FLAIR-smoke" / "table.md").read_text()
    assert (
        "- **sAE (16x16 bottleneck)** (sae-reconstruction): no result. "
        "jaxuad-train ...: TrainingDiverged: non-finite loss" in table
    )


def test_failed_row_step_skips_only_that_row(tmp_path, phantom_dir, monkeypatch):
    """A failed calibration stops its own row, not the other rows of the same training run."""
    import jaxuad.reproduce as rp
    from jaxuad.reproduce.cli import EXIT_FAILED_ROWS, main

    ran = []

    def fake(command, resume=False):
        argv = command.argv()
        ran.append(argv)
        if "--calibrate" in argv and argv[argv.index("--prior") + 1] == "tv":
            raise rp.ReproduceError("jaxuad-restore --calibrate ...: no lambda")

    monkeypatch.setattr(rp.plan, "run_command", fake)
    argv = ["--budget", "smoke", "--data", "phantom", "--contrast", "T1w", "--no-progress"]
    argv += ["--work", str(tmp_path / "w"), "--results", str(tmp_path / "r")]
    argv += ["--only", "vae_chen-map-tv", "vae_chen-map-l1", "--phantom", str(phantom_dir)]
    assert main("chen", argv) == EXIT_FAILED_ROWS
    rows = [" ".join(a) for a in ran if a[0] != "jaxuad-train"]
    assert [r for r in rows if "map-tv" in r] == []  # restore/evaluate of the failed row
    assert len([r for r in rows if "map-l1" in r]) == 3  # 2 restores + evaluate still ran
    table = (tmp_path / "r" / "chen-phantom-T1w-smoke" / "table.md").read_text()
    assert "(vae_chen-map-tv): no result. jaxuad-restore --calibrate ...: no lambda" in table
    assert "vae_chen-map-l1): no result" not in table


class _Called(Exception):
    pass


def _bound(fn, args, kwargs) -> dict:
    """A call's arguments by name, defaults filled in, paths as text (keyword options
    given as None count as not given)."""
    import inspect

    b = inspect.signature(fn).bind(*args, **kwargs)
    b.apply_defaults()
    named = dict(b.arguments)
    named.update({k: v for k, v in named.pop("options", {}).items() if v is not None})
    return {k: str(v) if isinstance(v, Path) else v for k, v in named.items()}


@pytest.mark.parametrize("paper", ["baur", "chen"])
def test_each_step_calls_the_library_as_its_command_line_does(
    paper, tmp_path, phantom_dir, monkeypatch
):
    """A reproduction calls library functions; commands.sh records command lines. Both
    routes reach the same function with the same arguments, for every step of a plan."""
    import jaxuad.evaluate
    import jaxuad.restore
    import jaxuad.train
    from jaxuad.cli import evaluate, restore, train

    calls = []

    def catch(module, name):
        real = getattr(module, name)

        def fake(*args, **kwargs):
            calls.append((name, _bound(real, args, kwargs)))
            raise _Called

        monkeypatch.setattr(module, name, fake)

    for module, name in ((jaxuad.train, "train"), (jaxuad.restore, "calibrate"),
                         (jaxuad.restore, "restore_cohort"), (jaxuad.evaluate, "evaluate")):
        catch(module, name)  # fmt: skip
    mains = {"jaxuad-train": train.main, "jaxuad-restore": restore.main,
             "jaxuad-evaluate": evaluate.main}  # fmt: skip
    r = Reproduction(paper, "phantom", "small", work=tmp_path, results=tmp_path,
                     phantom=phantom_dir, progress=False)  # fmt: skip
    monkeypatch.setattr(Reproduction, "split", lambda self: (["h000"], ["h001", "h002"]))
    steps = r.experiment_steps()  # the small budget: it changes training and restoration
    kinds = {type(s.command).__name__ for s in steps}
    assert kinds >= {"Train", "Restore", "Evaluate"} | ({"Calibrate"} if paper == "chen" else set())
    for step in steps:
        for route in (step.command, lambda c=step.command: mains[c.argv()[0]](c.argv()[1:])):
            with pytest.raises(_Called):
                route()
        library, cli = calls[-2:]
        assert library == cli, step.command.argv()
