"""jaxuad: unsupervised lesion detection in brain MRI with JAX and Flax NNX.

The package is laid out by stage of the pipeline:

* :mod:`jaxuad.data` - NIfTI datasets, validation, normalisation, slicing, the brain phantom;
* :mod:`jaxuad.models` - Flax NNX autoencoders and the model registry;
* :mod:`jaxuad.train` - losses, the jitted train step, checkpoints, the training driver;
* :mod:`jaxuad.restore` - turning an image into its pseudo-healthy version;
* :mod:`jaxuad.postprocess` - median filtering, mask erosion, connected components;
* :mod:`jaxuad.metrics` - thresholds, Dice, AUROC, AUPRC;
* :mod:`jaxuad.cli` - thin command-line front ends.

Importing jaxuad leaves the process as it was (JAX's config, ``XLA_FLAGS``, the allocator,
matplotlib's backend); :func:`jaxuad.runtime.configure` applies jaxuad's measured runtime
defaults on request, as the command-line tools do.
"""

from jaxuad import runtime

__version__ = "0.1.0"

__all__ = ["runtime"]
