"""Trajectory balance on HyperGrid with gfnx (JAX), as its users write it.

gfnx ships the environment, its reward and the rollout and log-probability helpers; the
network (equinox), the optimiser (optax) and the TB loss are the user's, as in gfnx's own
baselines. One jitted function does a whole training step (rollout, loss, gradient, update).
Prints one JSON line with flowlab's key names; see README.md beside this file.
"""

import argparse
import os
import sys
import time

# One CPU thread, set before JAX loads: XLA reads these once, at start-up.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import equinox as eqx  # noqa: E402
import gfnx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from gfnx.utils.rollout import forward_rollout, forward_trajectory_log_probs  # noqa: E402

from hypergrid_exact import Target, add_common_args, check_rewards, emit, peak_rss_bytes  # noqa: E402


class Policy(eqx.Module):
    """One MLP whose output is split into forward logits (dims + 1) and backward logits (dims):
    the trunk is shared by P_F and the learned P_B, as in flowlab."""

    mlp: eqx.nn.MLP
    n_fwd: int = eqx.field(static=True)

    def __init__(self, n_in, n_fwd, n_bwd, hidden, layers, key):
        self.mlp = eqx.nn.MLP(n_in, n_fwd + n_bwd, hidden, layers, key=key)
        self.n_fwd = n_fwd

    def __call__(self, obs):
        out = jax.vmap(self.mlp)(obs)
        return out[:, : self.n_fwd], out[:, self.n_fwd :]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_args(parser)
    args = parser.parse_args()
    if args.version:
        print(f"gfnx {gfnx_version()}, jax {jax.__version__}, equinox {eqx.__version__}, optax {optax.__version__}")
        return

    env = gfnx.HypergridEnvironment(
        gfnx.GeneralHypergridRewardModule(R0=args.r0, R1=0.5, R2=2.0), dim=args.dims, side=args.size
    )
    key = jax.random.PRNGKey(args.seed)
    key, env_key, net_key = jax.random.split(key, 3)
    env_params = env.init(env_key)
    target = Target(args.dims, args.size, args.r0)

    all_states = env.get_all_states(env_params)
    as_terminal = all_states.replace(is_terminal=jnp.ones_like(all_states.is_terminal))
    check_rewards(env.reward_module.reward(as_terminal, env_params), args.dims, args.size, args.r0)
    all_obs = env.get_obs(all_states, env_params)
    all_invalid = env.get_invalid_mask(all_states, env_params)
    mode_mask = np.zeros(args.size**args.dims, dtype=bool)
    mode_mask[list(target.modes)] = True
    mode_mask = jnp.asarray(mode_mask)

    policy = Policy(all_obs.shape[1], env.action_space.n, env.backward_action_space.n, args.hidden, args.layers, net_key)
    params, static = eqx.partition(policy, eqx.is_array)
    # log Z starts at 0 and has its own, larger learning rate.
    model = {"net": params, "log_z": jnp.zeros(())}
    optim = optax.multi_transform(
        {"net": optax.adam(args.lr), "log_z": optax.adam(args.lr_logz)}, {"net": "net", "log_z": "log_z"}
    )
    opt_state = optim.init(model)

    def policy_fn(rng_key, obs, net):
        fwd, bwd = eqx.combine(net, static)(obs)
        return fwd, {"forward_logits": fwd, "backward_logits": bwd}

    def loss_fn(model, rng_key):
        traj, info = forward_rollout(rng_key, args.batch, policy_fn, model["net"], env, env_params)
        log_pf, log_pb = forward_trajectory_log_probs(env, traj, env_params)
        residual = model["log_z"] + log_pf - log_pb - info["log_gfn_reward"]
        return jnp.mean(residual**2), info["final_env_state"]

    @jax.jit
    def train_step(model, opt_state, seen, rng_key):
        (loss, final), grads = jax.value_and_grad(loss_fn, has_aux=True)(model, rng_key)
        updates, opt_state = optim.update(grads, opt_state, model)
        # Modes are counted inside the step so that the loop never waits on the device.
        seen = seen.at[jax.vmap(env.state_to_index, in_axes=(0, None))(final, env_params)].set(True)
        return optax.apply_updates(model, updates), opt_state, seen, loss

    @jax.jit
    def forward_probs(net):
        fwd, _ = eqx.combine(net, static)(all_obs)
        return jax.nn.softmax(fwd, where=jnp.logical_not(all_invalid), axis=-1)

    def l1(model):
        probs = np.where(np.asarray(all_invalid), 0.0, np.asarray(forward_probs(model["net"]), dtype=np.float64))
        return target.l1(probs)

    seen = jnp.zeros(args.size**args.dims, dtype=bool)
    # Warm-up: compile the step on a throwaway call (JAX arrays are immutable, nothing changes).
    jax.block_until_ready(train_step(model, opt_state, seen, key))
    jax.block_until_ready(forward_probs(model["net"]))

    steps = -(-args.trajectories // args.batch)
    train_seconds, done, next_eval = 0.0, 0, args.eval_every or None
    if next_eval:
        emit({"trajectories": 0, "l1": l1(model), "modes_found": 0})
    for _ in range(steps):
        key, step_key = jax.random.split(key)
        t0 = time.perf_counter()
        model, opt_state, seen, loss = jax.block_until_ready(train_step(model, opt_state, seen, step_key))
        train_seconds += time.perf_counter() - t0
        done += args.batch
        if next_eval and done >= next_eval:
            emit({"trajectories": done, "l1": l1(model), "modes_found": int(jnp.sum(seen & mode_mask))})
            next_eval += args.eval_every

    emit({
        "library": f"gfnx {gfnx_version()}",
        "objective": "tb",
        "trajectories": done,
        "train_seconds": train_seconds,
        "trajectories_per_second": done / train_seconds,
        "l1": l1(model),
        "modes_found": int(jnp.sum(seen & mode_mask)),
        "modes_total": len(target.modes),
        "log_z": float(model["log_z"]),
        "peak_rss_bytes": peak_rss_bytes(),
    })


def gfnx_version():
    from importlib.metadata import version

    return version("gfnx")


if __name__ == "__main__":
    sys.exit(main())
