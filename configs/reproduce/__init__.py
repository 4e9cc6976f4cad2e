"""The reproductions' protocols, one module per paper: ``get_protocol() ->
jaxuad.reproduce.protocols.Protocol`` (training runs, table rows, budgets and claims).

Installed as ``jaxuad.configs.reproduce``. Every table ends with the voxel-wise baselines
(:data:`BASELINE_ROWS`), so each claim is read against them: the intensity baseline needs
no training run; the atlas is "trained" by ``jaxuad-train --model atlas``.
"""

from jaxuad.reproduce.protocols import Row

RECONSTRUCTION = "reconstruction"  # the autoencoders' own restoration
BASELINE_RUNS = {"atlas": ("atlas", None)}
BASELINE_ROWS = (
    Row("intensity (baseline)", "intensity", "intensity"),
    Row("voxel-wise atlas (baseline)", "atlas", "atlas"),
)
