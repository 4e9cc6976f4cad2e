"""Model geometry that needs no JAX: which encoder stages downsample, checked at config time."""

from __future__ import annotations

import math

from jaxuad.config import ModelConfig


def stage_strides(cfg: ModelConfig, image_size: int, bottleneck: str) -> list[int]:
    """Stride (2 or 1) of each of the ``len(cfg.features)`` encoder stages: enough stride-2
    stages to go from ``image_size`` to the bottleneck (``bottleneck_res`` for spatial
    codes, every stage for dense ones). ValueError when no such stack exists."""
    n = len(cfg.features)
    if bottleneck == "dense":
        n_down = n
    else:
        ratio = image_size / cfg.bottleneck_res
        n_down = round(math.log2(ratio)) if ratio >= 1 else -1
        if 2**n_down != ratio or not 0 <= n_down <= n:
            raise ValueError(
                f"bottleneck_res {cfg.bottleneck_res} needs image_size / bottleneck_res to be "
                f"a power of two <= 2**{n} (image_size {image_size}, {n} stages)"
            )
    if image_size % 2**n_down:
        raise ValueError(f"image_size {image_size} is not divisible by 2**{n_down}")
    return [2] * n_down + [1] * (n - n_down)
