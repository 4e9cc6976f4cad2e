"""The benchmarks' helpers: `bin/bench`'s summary (each figure against its target, from the
benchmarks' JSON) and the command log of the measurement scripts."""

import json
import os
import subprocess
import sys

import pytest

from benchmarks.summary import main, summarize


def _write(out, name, rows):
    (out / f"{name}.json").write_text(json.dumps({"meta": {}, "rows": rows}))


def test_summary_ratios_and_targets(tmp_path):
    _write(tmp_path, "train", [
        {"model": "svae", "batch_size": 8, "jax": {"images_per_s": 30.0, "compile_s": 1.0},
         "torch": {"images_per_s": 20.0, "compile_s": 0.0}},
        {"model": "sae", "batch_size": 8, "jax": {"images_per_s": 18.0, "compile_s": 1.0},
         "torch": {"images_per_s": 20.0, "compile_s": 0.0}},
    ])  # fmt: skip
    cell = lambda s: {"s_per_iter_per_image": s, "compile_s": 2.0}
    _write(tmp_path, "restore", [
        {"method": "anogan", "batch": 1, "jax": cell(0.05), "torch": cell(0.10)},
        {"method": "anogan", "batch": 16, "jax": cell(0.02), "torch": cell(0.03)},
    ])  # fmt: skip
    _write(tmp_path, "postprocess", [
        {"step": "whole pipeline", "data": "1 volume", "jax_s": 0.5, "scipy_s": 1.0,
         "speedup": 2.0, "jax_compile_s": 1.0},
    ])  # fmt: skip
    rows = {r["item"]: r for r in summarize(tmp_path)}
    assert rows["svae (batch 8)"]["ratio"] == 1.5 and rows["svae (batch 8)"]["met"]
    assert rows["sae (batch 8)"]["met"] is False
    # Batch 16 is judged against the PyTorch loop run one image at a time: 0.10 / 0.02.
    assert rows["anogan (batch 16)"]["ratio"] == 5.0 and rows["anogan (batch 16)"]["met"]
    anogan = rows["anogan, 100 iterations (batch 16)"]
    assert abs(anogan["ratio"] - 19.8547 / 2.0) < 1e-9 and anogan["met"] is False
    assert rows["whole pipeline, 1 volume"]["met"]
    assert main(["--summarize-only", "--out", str(tmp_path)]) == 0
    md = (tmp_path / "bench.md").read_text()
    assert "| train | sae (batch 8) |" in md and "**no**" in md


def test_summary_without_results_fails(tmp_path, capsys):
    assert main(["--summarize-only", "--out", str(tmp_path)]) == 1
    assert "no benchmark results" in capsys.readouterr().err


def test_command_log_writes_each_command_before_it_runs(tmp_path):
    from benchmarks import CommandLog

    log = CommandLog(tmp_path / "commands.sh", "a header")
    assert "usage: jaxuad-phantom" in log("jaxuad-phantom", "--help")
    assert log("jaxuad-train", "--model", "svae", done=True) == ""  # noted, not run
    with pytest.raises(SystemExit, match="failed .*jaxuad-phantom --bogus"):
        log("jaxuad-phantom", "--bogus")
    assert (tmp_path / "commands.sh").read_text().splitlines() == [
        "# a header",
        "jaxuad-phantom --help",
        "# output present, not rerun: jaxuad-train --model svae",
        "jaxuad-phantom --bogus",
    ]


def test_benchmarks_name_only_what_the_library_has():
    """The benchmarks import jaxuad lazily, inside the functions that measure, so a renamed
    module or function shows only when a benchmark runs (an hour later, or on a lent GPU).
    Every ``from jaxuad... import NAME`` in them, and every ``alias.attr`` on a module so
    imported, must resolve now."""
    import ast
    import importlib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "benchmarks"
    missing = []
    for path in sorted(root.glob("*.py")):
        tree = ast.parse(path.read_text())
        modules = {}  # alias -> module object, for names that are modules
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jaxuad"):
                mod = importlib.import_module(node.module)
                for a in node.names:
                    if not hasattr(mod, a.name):
                        try:
                            obj = importlib.import_module(f"{node.module}.{a.name}")
                        except ImportError:
                            missing.append(f"{path.name}: {node.module}.{a.name}")
                            continue
                    else:
                        obj = getattr(mod, a.name)
                    if type(obj).__name__ == "module":
                        modules[a.asname or a.name] = obj
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in modules
                and not hasattr(modules[node.value.id], node.attr)
            ):
                missing.append(f"{path.name}: {node.value.id}.{node.attr}")
    assert not missing, missing


def _ablation_row(value: float) -> dict:
    """One row of ablation.json with every figure set to ``value``."""
    return dict.fromkeys(
        ["auroc", "auprc", "dice_fpr1", "dice_percentile", "fpr1_unseen_healthy",
         "fpr1_patients_normal", "seconds_per_subject"], value,
    )  # fmt: skip


def test_ablation_reads_each_runs_preprocessing_and_budget(tmp_path):
    from benchmarks.ablation import budget_of, preprocessing_of, table

    (tmp_path / "config.json").write_text(json.dumps({
        "data": {"histogram_match": True, "curvature_flow": 0}, "train": {"batch_size": 64},
    }))  # fmt: skip
    rows = [{"step": 51, "epoch": 0.5}, {"step": 204, "epoch": 2.0}, {"step": 255, "epoch": 2.5}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for name in ("153", "204", "255.orbax-checkpoint-tmp"):  # killed while saving step 255
        (tmp_path / "checkpoints" / name).mkdir(parents=True)
    assert preprocessing_of(tmp_path) == "match"
    assert budget_of(tmp_path) == {"steps": 204, "epochs": 2.0, "images": 204 * 64}
    row = _ablation_row(0.5)
    md = table({
        "vae_chen/match/mm": {**row, "ceiling_dice": None, "training": budget_of(tmp_path)},
        "atlas/none/voxels": {**row, "ceiling_dice": 0.6, "training": None},
    })  # fmt: skip
    assert "| vae_chen | 2 epochs (13,056 slices) | match | mm | 0.500 |" in md
    assert "| atlas | - | none | voxels |" in md and "| n/a |" in md and "50.00%" in md


def test_ablation_rebuilds_its_table_and_figure_from_its_json(tmp_path):
    from benchmarks.ablation import main, table

    row = _ablation_row(0.7)
    rows = {
        "atlas/none/mm+negative": {**row, "ceiling_dice": 0.6, "training": None},
        "svae/none/mm+negative": {**row, "ceiling_dice": 0.6, "training": None, "lam": 10.0},
        "atlas/match/mm+negative": {**row, "ceiling_dice": 0.6, "training": None},
    }
    (tmp_path / "ablation.json").write_text(json.dumps({"commit": "x", "rows": rows}))
    assert main(["--from-json", "--out", str(tmp_path)]) == 0
    md = (tmp_path / "table.md").read_text()
    assert md == table(rows) + "\n"
    assert md.index("| atlas | - | match |") < md.index("| svae (λ = 10) |")  # grouped by row
    assert (tmp_path / "ablation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_benchmark_processes_compile_afresh(tmp_path):
    """A compile time must time a compile: benchmark processes apply jaxuad's defaults but
    not the persistent compilation cache, which would make a repeat a file load."""
    code = (
        "import os, jax; from benchmarks import configure; configure(); "
        "print(jax.config.jax_enable_compilation_cache, 'xla_cpu' in os.environ['XLA_FLAGS'])"
    )
    env = {**os.environ, "JAXUAD_CACHE_DIR": str(tmp_path)}
    env.pop("JAXUAD_NO_DEFAULTS", None)
    r = subprocess.run([sys.executable, "-c", code], env=env, text=True,
                       capture_output=True, check=True)  # fmt: skip
    assert r.stdout.split() == ["False", "True"]


def test_checkpoint_selection_writes_a_synthetic_cohort_and_one_run_per_checkpoint(
    phantom_dir, tmp_path
):
    from benchmarks.select import copy_checkpoint, synthetic_cohort
    from jaxuad.data import discover
    from jaxuad.data.nifti import load_volume

    healthy = phantom_dir / "healthy"
    manifest = synthetic_cohort(healthy, tmp_path / "syn", seed=0, count=(2, 3))
    subjects = discover(manifest, "T1w")
    assert len(subjects) == len(discover(healthy, "T1w"))
    for s in subjects:
        vol = load_volume(s.id, s.image, s.brainmask, s.lesion)
        clean = next(c for c in discover(healthy, "T1w") if c.id == s.id)
        before = load_volume(s.id, clean.image, clean.brainmask, None).image
        assert vol.lesion.any() and (vol.image[vol.lesion] < before[vol.lesion]).all()
    assert synthetic_cohort(healthy, tmp_path / "syn", seed=0) == manifest  # reused

    run = tmp_path / "run"
    for step in ("10", "20"):
        (run / "checkpoints" / step).mkdir(parents=True)
        (run / "checkpoints" / step / "state").write_text(step)
    (run / "config.json").write_text("{}")
    one = copy_checkpoint(run, 10, tmp_path / "run-10")
    assert sorted(p.name for p in (one / "checkpoints").iterdir()) == ["10"]
    assert (one / "config.json").is_file() and not list(tmp_path.glob("*run-10*partial*"))
