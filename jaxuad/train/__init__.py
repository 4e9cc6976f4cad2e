"""Training: objectives, the jitted train step, checkpoints and the driver."""

from jaxuad.train.checkpoint import Checkpoints
from jaxuad.train.losses import autoencoder_loss, kl_standard_normal, loss_for
from jaxuad.train.step import TrainState, init_state, make_optimizer, make_train_step
from jaxuad.train.trainer import (
    TrainingDiverged,
    TrainResult,
    build_model,
    load_run,
    train,
    training_images,
)

__all__ = [
    "Checkpoints",
    "TrainResult",
    "TrainState",
    "TrainingDiverged",
    "autoencoder_loss",
    "build_model",
    "init_state",
    "kl_standard_normal",
    "load_run",
    "loss_for",
    "make_optimizer",
    "make_train_step",
    "train",
    "training_images",
]
