"""jaxuad-train: train a model of healthy anatomy."""

from __future__ import annotations

import dataclasses

from jaxuad.cli._common import (
    add_devices,
    add_modality,
    add_overrides,
    add_progress,
    flag_overrides,
    parser,
    run,
    start_processes,
)
from jaxuad.config import available_models, load_config, override
from jaxuad.models import model_table

EPILOG = """\
examples:
  jaxuad-train --model svae                       # phantom, paper settings
  jaxuad-train --model svae --variant smoke       # seconds-scale check
  jaxuad-train --model sae --variant sae1 --data ../shared/data/ixi --workdir runs/sae1
  jaxuad-train --model svae --workdir runs/a --resume     # continue after a kill
  jaxuad-train --model dae --set train.epochs=20 --set data.slices=middle
  jaxuad-train --model svae --variance-net after   # + Chen's variance network, 2nd stage
  jaxuad-train --model vae_chen --data ../shared/data/ixi --workdir runs/chen
  jaxuad-train --model svae --devices 4           # data-parallel over 4 GPUs

models:
{models}

Adversarial models and the variance network update in phases (see
jaxuad/train/schemes.py); metrics.jsonl has one <phase>_loss per phase.

Every config key can be overridden with --set section.key=value; see configs/<model>.py
and jaxuad/config.py for the keys and their meaning. The workdir receives config.json,
metrics.jsonl (one line per log interval) and checkpoints/ (orbax).
exit codes: 0 ok, 2 bad input or config, 3 training diverged (NaN; last good checkpoint kept)
"""


def main(argv: list[str] | None = None) -> int:
    p = parser("jaxuad-train", "Train a model of healthy brain anatomy.")
    p.epilog = EPILOG.format(models=model_table())
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
        "as an uninterrupted run. Only train.epochs, keep_checkpoints, checkpoint_every, "
        "log_every, stream and loader_threads may change",
    )
    p.add_argument(
        "--stream",
        action="store_const",
        const=True,
        default=None,
        help="read training slices from an on-disk store beside the run (RUN/slices/, "
        "built once) a batch at a time, for cohorts larger than memory; the same batches "
        "as in memory (sugar for --set train.stream=true; needs the stream extra: "
        "pip install 'jaxuad[stream]')",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed for initialisation, shuffling and sampling (train.seed)",
    )
    p.add_argument(
        "--variance-net",
        nargs="?",
        const="joint",
        choices=("joint", "after", "off"),
        default=None,
        help="train Chen et al.'s variance network beside the model (for lg_neural "
        "restoration): joint = from step 0, alongside the model (the default when the "
        "flag is given bare); after = for train.variance_epochs more epochs once the model "
        "is trained, the model frozen; off = without it. Default: the config's "
        "model.variance_net (on for vae_chen and aae)",
    )
    add_devices(p, "data-parallel training (the global batch train.batch_size is split)")
    add_progress(p)
    args = p.parse_args(argv)

    sets = flag_overrides(args, {"stream": "train.stream"})
    config = override(load_config(args.model, args.variant), sets)
    data = dataclasses.replace(
        config.data,
        path=args.data if args.data is not None else config.data.path,
        modality=args.modality or config.data.modality,
    )
    train_cfg = (
        config.train if args.seed is None else dataclasses.replace(config.train, seed=args.seed)
    )
    model_cfg = config.model
    if args.variance_net is not None:
        model_cfg = dataclasses.replace(model_cfg, variance_net=args.variance_net != "off")
        if args.variance_net != "off":
            train_cfg = dataclasses.replace(train_cfg, variance_schedule=args.variance_net)
    config = dataclasses.replace(config, data=data, model=model_cfg, train=train_cfg)

    start_processes(args)
    from jaxuad.distributed import is_primary
    from jaxuad.train import train  # after argument parsing: --help stays fast

    result = train(
        config,
        args.workdir or f"runs/{config.model.name}",
        resume=args.resume,
        progress=not args.no_progress,
        devices=args.devices,
    )
    if is_primary() and result.state is None:  # fitted in one pass, no network
        scans = result.final_metrics["scans"]
        print(f"{config.model.name} of {scans} scans; run directory: {result.workdir}")
    elif is_primary():
        print(
            f"trained {config.model.name} for {result.steps} steps; run directory: {result.workdir}"
        )
    return 0


def entry() -> None:
    run(main)


if __name__ == "__main__":
    entry()
