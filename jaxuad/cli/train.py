"""jaxuad-train: train a model of healthy anatomy."""

from __future__ import annotations

import dataclasses

from jaxuad.cli._common import add_modality, add_overrides, add_progress, parser, run
from jaxuad.config import available_models, load_config, override

EPILOG = """\
examples:
  jaxuad-train --model svae                       # phantom, paper settings
  jaxuad-train --model svae --variant smoke       # seconds-scale check
  jaxuad-train --model sae --variant sae1 --data ../shared/data/ixi --workdir runs/sae1
  jaxuad-train --model svae --workdir runs/a --resume     # continue after a kill
  jaxuad-train --model dae --set train.epochs=20 --set data.slices=middle

Every config key can be overridden with --set section.key=value; see configs/<model>.py
and jaxuad/config.py for the keys and their meaning. The workdir receives config.json,
metrics.jsonl (one line per log interval) and checkpoints/ (orbax).
exit codes: 0 ok, 2 bad input or config, 3 training diverged (NaN; last good checkpoint kept)
"""


def main() -> int:
    p = parser("jaxuad-train", "Train an autoencoding model of healthy brain anatomy.")
    p.epilog = EPILOG
    p.add_argument(
        "--model",
        required=True,
        help=f"model to train, a configs/<model>.py: {', '.join(available_models())}",
    )
    p.add_argument(
        "--variant",
        default="default",
        help="config variant (default: %(default)s): default = paper settings, "
        "smoke = tiny, for tests, or "
        "one the model's config file defines (e.g. sae1 for sae)",
    )
    p.add_argument(
        "--data",
        default=None,
        help="training data: a BIDS-like folder (sub-<id>_<modality>.nii.gz with "
        "sub-<id>_brainmask.nii.gz) or a CSV manifest (subject,image,brainmask,"
        "lesion). Default: the phantom's healthy cohort, generated in memory",
    )
    add_modality(p, "image contrast to train on (default: the config's data.modality)")
    add_overrides(
        p, "SECTION.KEY=VALUE", "override one config value; repeatable (e.g. train.epochs=5)"
    )
    p.add_argument(
        "--workdir",
        default=None,
        help="run directory for checkpoints and logs (default: runs/<model>)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from the workdir's latest checkpoint; gives the same weights "
        "as an uninterrupted run. Only train.epochs may change on resume",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed for initialisation, shuffling and sampling (train.seed)",
    )
    add_progress(p)
    args = p.parse_args()

    config = override(load_config(args.model, args.variant), args.overrides)
    data = dataclasses.replace(
        config.data,
        path=args.data if args.data is not None else config.data.path,
        modality=args.modality or config.data.modality,
    )
    train_cfg = (
        config.train if args.seed is None else dataclasses.replace(config.train, seed=args.seed)
    )
    config = dataclasses.replace(config, data=data, train=train_cfg)

    from jaxuad.train import train  # after argument parsing: --help stays fast

    result = train(
        config,
        args.workdir or f"runs/{config.model.name}",
        resume=args.resume,
        progress=not args.no_progress,
    )
    print(f"trained {config.model.name} for {result.steps} steps; run directory: {result.workdir}")
    return 0


def entry() -> None:
    run(main)


if __name__ == "__main__":
    entry()
