"""The pure, jitted train step and the state it updates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jaxuad.config import TrainConfig
from jaxuad.train.schemes import Phase


class TrainState(NamedTuple):
    """Parameters, optimiser states (one per phase) and the step, as a pytree."""

    step: jax.Array  # [] int32, number of steps applied
    params: dict  # pure nested dict of arrays (nnx.to_pure_dict of the model's state)
    opt_state: dict  # phase name -> optax state of the groups that phase owns


def make_optimizer(phase: Phase) -> optax.GradientTransformation:
    """The optax optimiser of a phase (Adam at its learning rate)."""
    return optax.adam(phase.learning_rate, b1=phase.b1)


def owned(params: dict, phase: Phase) -> dict:
    """The parameter groups ``phase`` updates."""
    missing = [g for g in phase.owns if g not in params]
    if missing:
        raise ValueError(
            f"phase {phase.name!r} owns {missing}, which the model does not have "
            f"(its groups: {sorted(params)})"
        )
    return {g: params[g] for g in phase.owns}


def init_state(params: dict, phases: Sequence[Phase]) -> TrainState:
    """A fresh :class:`TrainState` for ``params`` and ``phases``."""
    opt = {p.name: make_optimizer(p).init(owned(params, p)) for p in phases}
    return TrainState(jnp.zeros((), jnp.int32), params, opt)


def make_train_step(
    graphdef: nnx.GraphDef,
    phases: Sequence[Phase],
    cfg: TrainConfig,
    mesh: jax.sharding.Mesh | None = None,
    *,
    max_traces: int | None = None,
):
    """Builds ``step(state, batch, key) -> (state, metrics)`` compiled with ``jax.jit``.

    ``max_traces``: fail (``chex.assert_max_traces``) when the step is traced more often,
    i.e. recompiled; for tests.

    With a ``mesh`` (:mod:`jaxuad.distributed`), pass the batch sharded along its ``data``
    axis and state and key replicated: the step stays data-parallel, the loss a mean over
    the global batch (XLA all-reduces the gradients), and state and metrics come back
    replicated.

    The phases run in order (:mod:`jaxuad.train.schemes`); each differentiates its loss
    with respect to its own parameter groups and applies its own Adam update. A phase
    outside its ``[start, stop)`` step range is skipped by ``lax.cond`` (no compute) and
    reports zero metrics. Metrics are ``<phase>_loss`` for each phase, the phases' own
    metrics, ``loss`` (the first phase's loss) and ``finite``.

    The per-step key is ``fold_in(key, state.step)`` (and per phase ``fold_in(., i)``), so
    a run resumed at step n draws the same noise as an uninterrupted one. The state is
    donated (updated in place).

    NaN guard: a phase whose loss or gradient is non-finite does not update its
    parameters, ``metrics["finite"]`` is 0 and the step counter does not advance, so the
    caller can stop cleanly with the last good checkpoint, never saving a poisoned state.
    For single-phase models the returned state then equals the input state.
    """
    txs = {p.name: make_optimizer(p) for p in phases}

    def run_phase(phase: Phase, params, opt_state, batch, key):
        tx = txs[phase.name]
        own = owned(params, phase)

        def objective(own):
            return phase.loss(nnx.merge(graphdef, {**params, **own}), batch, key, cfg)

        (loss, metrics), grads = jax.value_and_grad(objective, has_aux=True)(own)
        # One fused reduction covers NaN and inf in every gradient (inf - inf and inf**2
        # stay non-finite); lax.cond then skips the optimizer entirely on a bad step. A
        # jnp.where over params and optimizer state cost 3x the Adam update itself on CPU.
        finite = jnp.isfinite(loss) & jnp.isfinite(optax.tree.norm(grads))

        def apply(args):
            own, opt_state = args
            updates, opt_state = tx.update(grads, opt_state, own)
            return optax.apply_updates(own, updates), opt_state

        own, opt_state = jax.lax.cond(finite, apply, lambda args: args, (own, opt_state))
        return {**params, **own}, opt_state, {f"{phase.name}_loss": loss, **metrics}, finite

    def step(state: TrainState, batch: jax.Array, key: jax.Array):
        step_key = jax.random.fold_in(key, state.step)
        params, opt_states = state.params, dict(state.opt_state)
        metrics, all_finite = {}, jnp.array(True)
        for i, phase in enumerate(phases):
            args = (params, opt_states[phase.name], batch, jax.random.fold_in(step_key, i))
            if phase.start == 0 and phase.stop is None:
                params, opt, m, finite = run_phase(phase, *args)
            else:
                shapes = jax.eval_shape(lambda *a, p=phase: run_phase(p, *a), *args)[2]

                def skip(params, opt, batch, key, shapes=shapes):
                    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
                    return params, opt, zeros, jnp.array(True)

                stop = jnp.iinfo(jnp.int32).max if phase.stop is None else phase.stop
                active = (state.step >= phase.start) & (state.step < stop)
                params, opt, m, finite = jax.lax.cond(
                    active, lambda *a, p=phase: run_phase(p, *a), skip, *args
                )
            opt_states[phase.name] = opt
            metrics.update(m)
            all_finite = all_finite & finite
        metrics["loss"] = metrics[f"{phases[0].name}_loss"]
        new_step = jnp.where(all_finite, state.step + 1, state.step)
        state = TrainState(new_step, params, opt_states)
        return state, {**metrics, "finite": all_finite.astype(jnp.float32)}

    if max_traces is not None:
        step = chex.assert_max_traces(step, n=max_traces)
    if mesh is None:
        return jax.jit(step, donate_argnums=0)
    from jaxuad.distributed import replicated

    return jax.jit(step, donate_argnums=0, out_shardings=replicated(mesh))
