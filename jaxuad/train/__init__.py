"""Training: objectives, the jitted train step, checkpoints and the driver."""

from jaxuad.train.atlas import Atlas, fit_atlas, load_atlas
from jaxuad.train.checkpoint import Checkpoints
from jaxuad.train.losses import autoencoder_loss, negative_elbo
from jaxuad.train.run import Run, build_model, load_run
from jaxuad.train.schemes import Phase, phases_for, total_steps
from jaxuad.train.step import TrainState, init_state, make_train_step
from jaxuad.train.trainer import (
    TrainingDiverged,
    TrainResult,
    train,
    training_images,
    training_volumes,
)

__all__ = [
    "Atlas",
    "Checkpoints",
    "Phase",
    "Run",
    "TrainResult",
    "TrainState",
    "TrainingDiverged",
    "autoencoder_loss",
    "build_model",
    "fit_atlas",
    "init_state",
    "load_atlas",
    "load_run",
    "make_train_step",
    "negative_elbo",
    "phases_for",
    "total_steps",
    "train",
    "training_images",
    "training_volumes",
]
