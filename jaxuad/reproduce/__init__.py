"""Re-runnable reproductions of Baur et al. 2018's and Chen et al. 2019's Table 1.

A reproduction is a list of :class:`Step` s, each a call of the library (``train``,
``calibrate``, ``restore_cohort``, ``evaluate``; :mod:`~jaxuad.reproduce.commands`) with its
budget as typed config changes, run in this process (so compiled programs are shared).
Before it runs, each is written to ``commands.sh`` as the jaxuad command line that does the
same (``jaxuad-phantom``, ``jaxuad-train``, ``jaxuad-restore``, ``jaxuad-evaluate``), what a
researcher would type to redo it by hand. A step whose output is complete is skipped on the next
invocation, and a training step that was killed continues with ``--resume``, so a
two-hour run survives interruption. Heavy outputs (checkpoints, restorations as NIfTI)
stay in the work folder; the results folder gets what is meant to be kept: ``table.md``
(the table and which of the paper's claims hold on this run), its figures, each row's
``metrics.json``, report and figures, the commands and their timings.

Protocols (issue 5):

* **real**: train on healthy IXI T1 (``ixi/`` of ``--shared`` or
  ``$JAXUAD_SHARED_DATA``), holding out 20 subjects for
  thresholds and lambda; test on MSLUB T1 (``mslub/``). Slices with brain,
  centre-padded 91x109 -> 128x128.
* **phantom**: the same on jaxuad's brain phantom, once with FLAIR-like and once with
  T1w-like contrast.

Budgets: ``paper`` is the papers' settings (150 epochs, AnoGAN's 82; 800 restoration
iterations, L = 16, AnoGAN's 100 search steps). ``small`` cuts epochs, subjects and
iterations to fit 2 hours on 2 CPU cores (minutes on the phantom); every cut is in each
paper's protocol (``configs/reproduce/<paper>.py``) and printed in each table's header.
``smoke`` is for tests.
"""

from jaxuad.reproduce.claims import claims
from jaxuad.reproduce.plan import Reproduction
from jaxuad.reproduce.protocols import (
    DATASETS,
    PAPERS,
    SHARED_DATA_ENV,
    Budget,
    Claim,
    Protocol,
    Row,
    load_protocol,
    row_key,
    shared_data,
)
from jaxuad.reproduce.runner import ReproduceError, Step, default_results, git_commit

__all__ = [
    "DATASETS",
    "PAPERS",
    "SHARED_DATA_ENV",
    "shared_data",
    "Budget",
    "Claim",
    "Protocol",
    "ReproduceError",
    "Reproduction",
    "Row",
    "Step",
    "claims",
    "default_results",
    "git_commit",
    "load_protocol",
    "row_key",
]
