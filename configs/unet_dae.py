"""Denoising autoencoder of Kascenas et al. 2022: a UNet trained to remove coarse noise,
restored by one pass (``--method reconstruction``).

The paper: a UNet of four levels (64-128-256-512 channels), noise on a 16x16 grid over
128 px (cells of about 15 mm at BraTS's 1.875 mm) with sigma 0.2 on intensities scaled to
the brain's 99th percentile, Adam 1e-4, batch 16. Here: 16-32-64-128 channels (about 10
training images/s on one CPU core, against 3.5 at 32-256); 112 px frames, which hold the
2 mm MNI grid's 91x109 slices, with a 14x14 noise grid, so cells stay 8 px = 16 mm;
histogram matching, then minmax (the cohort's 1st-99th percentile range to [0, 1]); Adam
2e-4 for short CPU budgets. Variants: ``default`` and ``smoke``.
"""

from jaxuad.config import Config, DataConfig, ModelConfig, TrainConfig, apply_variant


def get_config(variant: str = "default") -> Config:
    config = Config(
        data=DataConfig(histogram_match=True, image_size=112),
        model=ModelConfig(name="unet_dae", features=(16, 32, 64, 128), kernel_size=3),
        train=TrainConfig(learning_rate=2e-4, batch_size=16, epochs=100, noise_resolution=14),
    )
    return apply_variant(config, variant)
