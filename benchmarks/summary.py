"""``bin/bench``: every benchmark in one run, and one table of each figure against its target.

Runs ``bin/bench-train``, ``bin/bench-restore`` and ``bin/bench-postprocess`` (each writes
its own JSON and table into ``--out``), then reads their JSON files and writes
``bench.json`` and ``bench.md``: train images/s per model, restoration seconds per
iteration per image at batch 1 and 16, post-processing time per volume and per cohort,
compile times, and each ratio against PyTorch or SciPy with the target it answers to:

* train >= 1.0x PyTorch eager;
* restoration at batch 16 >= 3x faster per image than a plain PyTorch loop, judged against
  the loop run one image at a time as the papers' reference code runs (the ratio against
  PyTorch at batch 16 is in the table too);
* AnoGAN (100 iterations) >= 100x faster per sample than Baur et al.'s 19.85 s;
* post-processing >= SciPy.

``--summarize-only`` rebuilds the table from JSON files already in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks import default_out, write_results
from benchmarks.restore import PAPER_ANOGAN_S, one_image_at_a_time, per_image

QUICK = {
    "train": ["--models", "dae", "svae", "vae_chen", "anogan", "--steps", "5", "--repeats", "1"],
    "restore": ["--steps", "3", "--repeats", "1"],
    "postprocess": ["--subjects", "4", "--repeats", "1"],
}


def _load(out: Path, name: str) -> list[dict]:
    path = out / f"{name}.json"
    return json.loads(path.read_text())["rows"] if path.is_file() else []


def _row(area, item, figure, compile_s, ratio, target=None, threshold=None):
    """A figure; with a ``target`` (text) and its ``threshold`` on ``ratio``, whether it is met."""
    met = None if ratio is None or threshold is None else bool(ratio >= threshold)
    return {
        "area": area,
        "item": item,
        "figure": figure,
        "compile_s": compile_s,
        "ratio": ratio,
        "target": target,
        "met": met,
    }


def summarize(out: Path) -> list[dict]:
    """One row per figure, from ``out/{train,restore,postprocess}.json``."""
    rows = []
    for r in _load(out, "train"):
        j, t = r["jax"], r.get("torch")
        ratio = j["images_per_s"] / t["images_per_s"] if t else None
        figure = f"{j['images_per_s']:.1f} img/s" + (
            f" (PyTorch {t['images_per_s']:.1f})" if t else ""
        )
        rows.append(
            _row("train", f"{r['model']} (batch {r['batch_size']})", figure, j["compile_s"],
                 ratio, ">= 1.0x PyTorch eager", 1.0)
        )  # fmt: skip
    restore = _load(out, "restore")
    for r in restore:
        if not r["jax"]:
            continue
        j, same = per_image(r["jax"]), per_image(r.get("torch"))
        ref = one_image_at_a_time(restore, r["method"])
        figure = f"{1e3 * j:.1f} ms/iter/image" + (
            f" (PyTorch at this batch {1e3 * same:.1f})" if same else ""
        )
        target = (">= 3x a PyTorch loop, one image at a time", 3.0) if r["batch"] == 16 else ()
        rows.append(
            _row("restore", f"{r['method']} (batch {r['batch']})", figure,
                 r["jax"]["compile_s"], ref / j if ref else None, *target)
        )  # fmt: skip
        if r["method"] == "anogan" and r["batch"] == 16:
            rows.append(
                _row("restore", "anogan, 100 iterations (batch 16)",
                     f"{100 * j:.2f} s/sample (paper {PAPER_ANOGAN_S:.2f})", None,
                     PAPER_ANOGAN_S / (100 * j), ">= 100x faster than the paper", 100.0)
            )  # fmt: skip
    for r in _load(out, "postprocess"):
        rows.append(
            _row("postprocess", f"{r['step']}, {r['data']}",
                 f"{r['jax_s']:.3f} s (SciPy {r['scipy_s']:.3f})", r["jax_compile_s"],
                 r["speedup"], ">= 1.0x SciPy", 1.0)
        )  # fmt: skip
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| area | what | figure | compile [s] | ratio | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = "n/a" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        comp = "-" if r["compile_s"] is None else f"{r['compile_s']:.1f}"
        met = "-" if r["target"] is None else {True: "yes", False: "**no**", None: "n/a"}[r["met"]]
        lines.append(
            f"| {r['area']} | {r['item']} | {r['figure']} | {comp} | {ratio} "
            f"| {r['target'] or '-'} | {met} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="bin/bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="a short run (4 models, fewer steps and repeats, a 4-subject cohort) to check "
        "the pipeline; its figures are noisier",
    )
    p.add_argument(
        "--summarize-only",
        action="store_true",
        help="do not measure; rebuild bench.md from the JSON files already in --out",
    )
    p.add_argument(
        "--out",
        default=default_out(),
        help="folder for every benchmark's JSON and table (default: %(default)s)",
    )
    args = p.parse_args(argv)
    out = Path(args.out)
    if not args.summarize_only:
        from benchmarks import postprocess, restore, train

        for name, module in (("train", train), ("restore", restore), ("postprocess", postprocess)):
            print(f"== bench-{name}", file=sys.stderr, flush=True)
            extra = QUICK[name] if args.quick else []
            module.main([*extra, "--out", str(out)])
    rows = summarize(out)
    if not rows:
        print(f"bin/bench: no benchmark results in {out}", file=sys.stderr)
        return 1
    write_results(out, "bench", {"quick": args.quick}, rows, table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
