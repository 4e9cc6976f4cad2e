"""Voxel-wise normative atlas of the healthy training cohort: the per-voxel mean and standard
deviation of the normalised scans on their common grid; a scan's score is |z| (the
``atlas`` baseline, ``jaxuad-restore --method atlas``). No network, nothing to optimise:
``jaxuad-train --model atlas`` makes one pass over the training scans.
"""

from jaxuad.config import Config, ModelConfig, RestoreConfig, apply_variant


def get_config(variant: str = "default") -> Config:
    config = Config(model=ModelConfig(name="atlas"), restore=RestoreConfig(method="atlas"))
    return apply_variant(config, variant)
