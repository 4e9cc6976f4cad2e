"""What a restoration records beside its outputs (``restore.json``), as a typed struct."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from jaxuad.core.errors import DataError
from jaxuad.core.io import read_json, write_json

# The files a restoration writes per subject: sub-<id>_<part>.nii.gz.
OUTPUT_PARTS = ("restored", "residual", "brainmask", "normalized")
SUMMARY_FILE = "restore.json"


@dataclass(frozen=True)
class RestoreSummary:
    """A restoration's provenance and timings (``restore.json``).

    Network methods also record slices, compile time, time per iteration and the device;
    methods with settings record the :class:`~jaxuad.config.RestoreConfig` fields they ran
    with (``restore``) and their ``lam``.
    """

    method: str
    run: str | None  # absolute run folder (None: a baseline run without one)
    data: str  # the --data folder or manifest
    modality: str
    model: str  # the run's model name (the method's, for a baseline without a run)
    latent: str | None  # the model's code size, e.g. "8x8x64"
    normalization: str
    subjects: tuple[str, ...]
    seconds_per_subject: float  # I/O included
    slices: int | None = None
    compile_s: float | None = None
    seconds_per_slice: float | None = None
    iterations: int | None = None
    seconds_per_iteration_per_image: float | None = None
    device: str | None = None
    devices: int | None = None
    seed: int | None = None
    restore: dict | None = None
    lam: float | None = None
    normative: dict | None = None  # the per-voxel statistics that standardised residuals
    space: str | None = None  # template | native | both (None: template, earlier versions)

    @property
    def network(self) -> bool:
        """Whether slices went through a network (not a voxel-wise baseline)."""
        return self.slices is not None

    @property
    def prior(self) -> str | None:
        """The restoration prior of an iterative method, else None."""
        return (self.restore or {}).get("prior")

    def files(self) -> set[str]:
        """The names of every file (and folder) this restoration wrote into its folder."""
        parts = set()
        if self.space != "native":
            parts = {f"sub-{s}_{p}.nii.gz" for s in self.subjects for p in OUTPUT_PARTS}
        if self.space in ("native", "both"):
            parts.add("native")
        return parts | {SUMMARY_FILE}

    def to_json(self) -> dict:
        """A JSON object (unset fields left out)."""
        d = dataclasses.asdict(self)
        d["subjects"] = list(self.subjects)
        return {k: v for k, v in d.items() if v is not None or k in ("run", "latent")}

    @classmethod
    def from_json(cls, d: dict, where: str = "restore.json") -> RestoreSummary:
        """From :meth:`to_json` (or a restore.json of an earlier jaxuad version)."""
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            kw = {k: v for k, v in d.items() if k in names}
            kw["subjects"] = tuple(kw.get("subjects", ()))
            return cls(**kw)
        except TypeError as e:
            raise DataError(f"{where}: not a restoration summary ({e})") from None

    @classmethod
    def read(cls, folder) -> RestoreSummary | None:
        """The summary in ``folder`` (None when it has none)."""
        path = Path(folder) / SUMMARY_FILE
        if not path.is_file():
            return None
        d = read_json(path, "restoration summary")
        if not isinstance(d, dict):
            raise DataError(f"{path}: not a restoration summary")
        return cls.from_json(d, str(path))

    def write(self, folder) -> None:
        write_json(self.to_json(), Path(folder) / SUMMARY_FILE)


def owned_files(folder) -> set[str]:
    """The files of an earlier restoration in ``folder``: what its restore.json lists, and
    temporary files jaxuad's atomic writes left behind when killed (``.tmp-*``)."""
    temporary = {p.name for p in Path(folder).glob(".tmp-*")}
    try:
        summary = RestoreSummary.read(folder)
    except DataError:
        return temporary
    return temporary | (set() if summary is None else summary.files())
