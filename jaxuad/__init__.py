"""jaxuad: unsupervised lesion detection in brain MRI with JAX and Flax NNX.

The package is laid out by stage of the pipeline:

* :mod:`jaxuad.data` - NIfTI datasets, validation, normalisation, slicing, the brain phantom;
* :mod:`jaxuad.models` - Flax NNX autoencoders and the model registry;
* :mod:`jaxuad.train` - losses, the jitted train step, checkpoints, the training driver;
* :mod:`jaxuad.restore` - turning an image into its pseudo-healthy version;
* :mod:`jaxuad.postprocess` - median filtering, mask erosion, connected components;
* :mod:`jaxuad.metrics` - thresholds, Dice, AUROC, AUPRC;
* :mod:`jaxuad.evaluate` - thresholds fitted on healthy residuals, scores of a cohort;
* :mod:`jaxuad.report` - Markdown tables and figures of scores;
* :mod:`jaxuad.cli` - thin command-line front ends.

The names a researcher calls are available from the top level, e.g. ``jaxuad.load_run``,
``jaxuad.fit_thresholds``, ``jaxuad.score``, ``jaxuad.read_nifti`` (``jaxuad.__all__`` lists them).

Importing jaxuad leaves the process as it was (JAX's config, ``XLA_FLAGS``, the allocator,
matplotlib's backend); :func:`jaxuad.runtime.configure` applies jaxuad's measured runtime
defaults on request, as the command-line tools do.
"""

import importlib

from jaxuad import runtime

__version__ = "0.1.0"

# What research code calls, by the module that defines it (``restore`` and ``train`` are
# subpackages too, so their functions stay ``jaxuad.restore.restore`` and
# ``jaxuad.train.train``). Loaded on first use, so
# ``import jaxuad`` (and every command's --help) stays fast and JAX-free.
_API = {
    "load_config": "jaxuad.config",
    "discover": "jaxuad.data",
    "iter_volumes": "jaxuad.data",
    "load_volume": "jaxuad.data",
    "read_nifti": "jaxuad.data",
    "write_nifti_like": "jaxuad.data",
    "phantom": "jaxuad.data",
    "Run": "jaxuad.train",
    "load_run": "jaxuad.train",
    "lg": "jaxuad.restore",
    "fit_thresholds": "jaxuad.evaluate",
    "score": "jaxuad.evaluate",
    "EvalResult": "jaxuad.evaluate",
}

# Every subpackage and stage module: ``import jaxuad`` then ``jaxuad.restore.restore(...)``.
_SUBMODULES = (
    "core", "config", "data", "models", "train", "sampling", "restore", "postprocess",
    "metrics", "similarity", "evaluate", "report", "reproduce", "distributed", "cli",
)  # fmt: skip

__all__ = ["runtime", "JaxuadError", *_API, "postprocess", "metrics"]


def __getattr__(name: str):
    if name == "JaxuadError":
        from jaxuad.core.errors import JaxuadError

        return JaxuadError
    if name in _SUBMODULES:
        return importlib.import_module(f"jaxuad.{name}")
    if name not in _API:
        raise AttributeError(f"module 'jaxuad' has no attribute {name!r}")
    module = importlib.import_module(_API[name])
    try:
        return getattr(module, name)
    except AttributeError:  # a submodule, e.g. jaxuad.data.phantom
        return importlib.import_module(f"{module.__name__}.{name}")
