"""Trajectory balance on HyperGrid with torchgfn (PyTorch), as its users write it.

Environment, preprocessor, MLP, estimators, sampler and TB loss are all torchgfn's; the
training loop is the one its documentation shows. Prints one JSON line with flowlab's key
names; see README.md beside this file.
"""

import argparse
import sys
import time
from importlib.metadata import version

import numpy as np
import torch
from gfn.estimators import DiscretePolicyEstimator
from gfn.gflownet import TBGFlowNet
from gfn.gym import HyperGrid
from gfn.preprocessors import KHotPreprocessor
from gfn.samplers import Sampler
from gfn.utils.modules import MLP

from hypergrid_exact import Target, add_common_args, check_rewards, emit, peak_rss_bytes


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_args(parser)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    if args.version:
        print(f"torchgfn {version('torchgfn')}, torch {torch.__version__}, numpy {np.__version__}")
        return

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    env = HyperGrid(
        ndim=args.dims,
        height=args.size,
        reward_fn_kwargs={"R0": args.r0, "R1": 0.5, "R2": 2.0},
        store_all_states=True,  # for the exact evaluation only; sampling never uses it
    )
    target = Target(args.dims, args.size, args.r0)
    all_states = env.all_states  # row-major, as the evaluation expects (torchgfn checks it)
    check_rewards(env.reward(all_states), args.dims, args.size, args.r0)

    # Each coordinate one-hot (k-hot input of dims * size); P_B shares P_F's trunk, as in flowlab.
    preprocessor = KHotPreprocessor(height=args.size, ndim=args.dims)
    module_pf = MLP(preprocessor.output_dim, env.n_actions, hidden_dim=args.hidden, n_hidden_layers=args.layers)
    module_pb = MLP(preprocessor.output_dim, env.n_actions - 1, hidden_dim=args.hidden,
                    n_hidden_layers=args.layers, trunk=module_pf.trunk)
    pf = DiscretePolicyEstimator(module_pf, env.n_actions, preprocessor=preprocessor, is_backward=False)
    pb = DiscretePolicyEstimator(module_pb, env.n_actions, preprocessor=preprocessor, is_backward=True)
    gfn = TBGFlowNet(pf=pf, pb=pb, init_logZ=0.0)
    sampler = Sampler(estimator=pf)
    optimizer = torch.optim.Adam(gfn.pf_pb_parameters(), lr=args.lr)
    optimizer.add_param_group({"params": gfn.logz_parameters(), "lr": args.lr_logz})

    def l1():
        with torch.no_grad():
            dist = pf.to_probability_distribution(all_states, pf(all_states))
            probs = dist.probs.double().numpy()
        return target.l1(probs)

    modes = set()
    steps = -(-args.trajectories // args.batch)
    train_seconds, done, next_eval = 0.0, 0, args.eval_every or None
    if next_eval:
        emit({"trajectories": 0, "l1": l1(), "modes_found": 0})
    for _ in range(steps):
        t0 = time.perf_counter()
        trajectories = sampler.sample_trajectories(env, n=args.batch, save_logprobs=True)
        optimizer.zero_grad()
        loss = gfn.loss(env, trajectories, recalculate_all_logprobs=False)
        loss.backward()
        optimizer.step()
        # Mode bookkeeping is part of the loop, as flowlab's is.
        modes |= env.modes_found(trajectories.terminating_states)
        train_seconds += time.perf_counter() - t0
        done += args.batch
        if next_eval and done >= next_eval:
            emit({"trajectories": done, "l1": l1(), "modes_found": len(modes)})
            next_eval += args.eval_every

    emit({
        "library": f"torchgfn {version('torchgfn')}",
        "objective": "tb",
        "trajectories": done,
        "train_seconds": train_seconds,
        "trajectories_per_second": done / train_seconds,
        "l1": l1(),
        "modes_found": len(modes),
        "modes_total": len(target.modes),
        "log_z": gfn.logZ.item(),
        "peak_rss_bytes": peak_rss_bytes(),
    })


if __name__ == "__main__":
    sys.exit(main())
