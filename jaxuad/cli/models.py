"""jaxuad-models: the installed runs, and installing one."""

from __future__ import annotations

from jaxuad.cli._common import parser, run

EPILOG = """\
runs are installed in $JAXUAD_MODELS (default ~/.cache/jaxuad/models), one folder per name,
or come with a companion package (pip install jaxuad_models_<name>-*.whl, built by
jaxuad.pretrained.package_run); jaxuad-detect --workdir NAME uses one.
bin/build-pretrained --install --wheel installs the pretrained atlas detector as
atlas-ixi-t1 and packs it into dist/.

examples:
  jaxuad-models
  jaxuad-models --install runs/dae --name dae-ixi
  jaxuad-detect --workdir dae-ixi --data scan.nii.gz --out found/
"""


def main(argv: list[str] | None = None) -> int:
    p = parser("jaxuad-models", "List the installed runs, or install one.")
    p.epilog = EPILOG
    p.add_argument("--install", default=None, metavar="RUN", help="a run folder to install")
    p.add_argument("--name", default=None, help="with --install: its name")
    p.add_argument(
        "--overwrite", action="store_true", help="with --install: replace a run of that name"
    )
    args = p.parse_args(argv)

    from jaxuad.config import ConfigError
    from jaxuad.pretrained import install, installed, models_dir

    if args.install is not None:
        if args.name is None:
            raise ConfigError("--install needs --name")
        dst = install(args.install, args.name, overwrite=args.overwrite)
        print(f"installed {args.install} as {args.name} ({dst})")
        return 0
    if args.name is not None or args.overwrite:
        raise ConfigError("--name and --overwrite go with --install")
    found = installed()
    print(f"{len(found)} installed (in {models_dir()} or a companion package)")
    for m in found:
        detector = "detector" if (m.path / "detector.json").is_file() else "no detector"
        print(f"  {m.name:24s} {detector:12s} {m.summary}")
    return 0


def entry() -> None:
    run(main)


if __name__ == "__main__":
    entry()
