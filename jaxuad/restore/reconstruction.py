"""Reconstruction-based restoration and the cohort driver that writes NIfTI outputs.

For every subject the output folder receives, on the input's grid and with its affine:

* ``sub-<id>_restored.nii.gz``: the restoration, in normalised intensity units;
* ``sub-<id>_residual.nii.gz``: ``|x - x_restored|`` inside the brain mask;
* ``sub-<id>_brainmask.nii.gz``: a copy of the mask, and
* ``sub-<id>_normalized.nii.gz``: the input in the same normalised units as the
  restoration, so the folder alone can calibrate thresholds (``jaxuad-evaluate
  --healthy``), including the priors that need the input (``evaluate.positive_only``);

and ``restore.json`` records the run, method and timings. Axial slices outside the run's
slice selection are not processed: there the restoration equals the input and the residual
is 0.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from jaxuad.config import ConfigError
from jaxuad.data import iter_volumes, slice_volume, write_json, write_nifti_like

METHODS = ("reconstruction",)


def latent_description(config) -> str:
    """Baur's "z" column: ``512`` for dense bottlenecks, ``8x8x64`` for spatial ones."""
    from jaxuad.models import REGISTRY

    m = config.model
    if getattr(REGISTRY[m.name], "keywords", {}).get("bottleneck", "dense") == "dense":
        return str(m.z_dim)
    return f"{m.bottleneck_res}x{m.bottleneck_res}x{m.z_channels}"


def make_reconstruct(graphdef: nnx.GraphDef):
    """``fn(params, x) -> x_hat`` compiled once: deterministic encode-decode (VAEs use the
    posterior mean), x: [B, S, S, 1]."""

    @jax.jit
    def reconstruct(params, x):
        return nnx.merge(graphdef, params)(x).recon

    return reconstruct


def reconstruct_slices(fn, params, images: np.ndarray, batch_size: int) -> np.ndarray:
    """Runs ``fn`` over [N, S, S, 1] in fixed-size batches (the last one padded, so the
    function compiles exactly once) and returns [N, S, S, 1] on the host."""
    n = images.shape[0]
    pad = (-n) % batch_size
    x = np.concatenate([images, np.zeros((pad, *images.shape[1:]), images.dtype)])
    outs = [fn(params, jnp.asarray(x[i : i + batch_size])) for i in range(0, len(x), batch_size)]
    return np.asarray(jnp.concatenate(outs))[:n]


def restore_cohort(
    workdir,
    data,
    out,
    *,
    method: str = "reconstruction",
    modality: str | None = None,
    step: int | None = None,
    progress: bool = True,
) -> dict:
    """Restores every subject of ``data`` with the model trained in ``workdir``.

    All input volumes are validated before anything is written, so bad input leaves no
    partial output. Returns the summary also written to ``out/restore.json``.
    """
    from jaxuad.train import load_run  # late import: train pulls in optax/orbax

    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; available: {', '.join(METHODS)}")
    config, graphdef, params = load_run(workdir, step)
    from jaxuad.models import is_autoencoder

    if not is_autoencoder(config.model):
        raise ConfigError(
            f"{workdir}: {config.model.name} has no encoder to reconstruct with; its "
            "detection is the iterative latent search (--method anogan), not built yet"
        )
    dc = config.data
    if modality is not None:
        import dataclasses

        dc = dataclasses.replace(dc, modality=modality)
    volumes = list(iter_volumes(data, dc.modality))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    fn = make_reconstruct(graphdef)
    bs = config.restore.batch_size
    shape = (bs, dc.image_size, dc.image_size, 1)
    t0 = time.perf_counter()
    fn.lower(params, jax.ShapeDtypeStruct(shape, jnp.float32)).compile()
    compile_s = time.perf_counter() - t0

    n_slices, run_s, subjects = 0, 0.0, []
    for vol in tqdm(volumes, desc="restore", unit="subject", disable=not progress):
        vs = slice_volume(vol, dc)
        t0 = time.perf_counter()
        recon = reconstruct_slices(fn, params, vs.images, bs)
        run_s += time.perf_counter() - t0
        n_slices += len(vs.index)
        x = vs.normalized
        restored = x.copy()
        restored[:, :, vs.index] = vs.to_volume(recon)[:, :, vs.index]
        residual = np.abs(x - restored) * vol.brainmask
        sid = vol.subject
        write_nifti_like(restored, vol, out / f"sub-{sid}_restored.nii.gz")
        write_nifti_like(residual, vol, out / f"sub-{sid}_residual.nii.gz")
        write_nifti_like(vol.brainmask, vol, out / f"sub-{sid}_brainmask.nii.gz")
        write_nifti_like(x, vol, out / f"sub-{sid}_normalized.nii.gz")
        subjects.append(sid)

    summary = {
        "method": method,
        "run": str(Path(workdir).absolute()),
        "data": str(data),
        "modality": dc.modality,
        "model": config.model.name,
        "latent": latent_description(config),
        "normalization": dc.normalization,
        "subjects": subjects,
        "slices": n_slices,
        "compile_s": compile_s,
        "seconds_per_slice": run_s / max(n_slices, 1),
        "device": jax.devices()[0].platform,
    }
    write_json(summary, out / "restore.json")
    return summary
