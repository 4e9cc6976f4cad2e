"""jaxuad-preprocess: bring scans as acquired onto the grid of a run."""

from __future__ import annotations

from pathlib import Path

from jaxuad.cli._common import add_modality, add_progress, parser, run

EPILOG = """\
input (--data): a scan file, or a folder of sub-<id>_<modality>.nii[.gz] scans as acquired
(whole head, scanner space, any orientation), each with an optional
sub-<id>_brainmask.nii[.gz] on its own grid; without one the brain is extracted by deepbet.

output (--out, written whole or not at all), on the template's grid:
  sub-<id>_<modality>.nii.gz     N4-corrected, skull-stripped, affinely registered scan
  sub-<id>_brainmask.nii.gz      its brain mask
  sub-<id>_to_template.mat       the affine (ANTs) from the scan to the template
  sub-<id>_native.json           the scan as acquired: its file and grid
jaxuad-restore and jaxuad-evaluate read this folder as --data; with --space native (or
both) they also write their volumes back on each scan as acquired.

needs: pip install 'jaxuad[preprocess]' (ANTsPy); for brain extraction also deepbet and the
CPU build of torch (pip install torch==2.13.0 deepbet).

examples:
  jaxuad-preprocess --data raw/ --template runs/dae --out prep/
  jaxuad-preprocess --data scan.nii.gz --template runs/atlas --out prep/
"""


def main(argv: list[str] | None = None) -> int:
    p = parser("jaxuad-preprocess", "Bring scans as acquired onto the grid of a run.")
    p.epilog = EPILOG
    p.add_argument("--data", required=True, help="a scan file or a folder of scans as acquired")
    p.add_argument(
        "--template",
        required=True,
        help="a run folder (its template.nii.gz, the mean of its training scans) or a "
        "template NIfTI",
    )
    p.add_argument("--out", required=True, help="output folder (new or empty)")
    add_modality(p, "contrast of the scans (default: T1w)")
    p.add_argument("--no-n4", action="store_true", help="skip N4 bias-field correction")
    p.add_argument(
        "--overwrite", action="store_true", help="--out may hold an earlier preprocessing"
    )
    add_progress(p)
    args = p.parse_args(argv)

    from tqdm.auto import tqdm

    from jaxuad.core.io import OutputFolder, check_apart
    from jaxuad.core.signals import held_interrupts
    from jaxuad.data.dataset import check_subject_id
    from jaxuad.preprocess import find_scans, preprocess_scan, template_path

    modality = args.modality or "T1w"
    template = template_path(args.template)
    scans = find_scans(args.data, modality)
    for sid, _, _ in scans:
        check_subject_id(sid, str(args.data))
    folders = {Path(s).parent for _, s, _ in scans} | {Path(args.data)}
    check_apart(args.out, [f for f in folders if f.is_dir()])

    def owned(folder):  # an earlier preprocessing: its own four files per subject
        return {p.name for p in Path(folder).glob("sub-*")}

    with OutputFolder(args.out, overwrite=args.overwrite, owned=owned) as folder:
        with held_interrupts() as pending:
            for sid, scan, mask in tqdm(scans, unit="scan", disable=args.no_progress):
                if pending:
                    pending.pop()()
                preprocess_scan(scan, mask, template, folder.path, sid, modality=modality,
                                n4=not args.no_n4)  # fmt: skip
            if pending:
                pending.pop()()
            folder.commit()
    print(f"preprocessed {len(scans)} scans onto {template} into {args.out}")
    return 0


def entry() -> None:
    run(main)


if __name__ == "__main__":
    entry()
