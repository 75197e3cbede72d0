"""Exact evaluation on HyperGrid shared by the peer scripts (numpy only).

States are indexed in row-major order over (side,) * dims, so the parents x - e_d of a state
always have smaller indices and one pass in index order is a topological order of the DAG.
Forward probabilities come as an array (n_states, dims + 1): column d increments dimension d,
the last column is the exit action; invalid actions must already have probability 0.
"""

import itertools
import json
import resource
import sys

import numpy as np


def all_states(dims, side):
    """Every grid point, row-major (the last coordinate varies fastest)."""
    return np.array(list(itertools.product(range(side), repeat=dims)), dtype=np.int64)


def hypergrid_reward(states, side, r0, r1=0.5, r2=2.0):
    """The standard HyperGrid reward, written out here to check each library's against."""
    ax = np.abs(states / (side - 1) - 0.5)
    outer = np.all(ax > 0.25, axis=-1)
    ring = np.all((ax > 0.3) & (ax < 0.4), axis=-1)
    return r0 + r1 * outer + r2 * ring


def check_rewards(library_rewards, dims, side, r0):
    """Fails loudly if a library's reward is not the one flowlab is measured on."""
    expected = hypergrid_reward(all_states(dims, side), side, r0)
    got = np.asarray(library_rewards, dtype=np.float64).reshape(-1)
    if not np.allclose(got, expected, rtol=1e-5, atol=1e-7):
        bad = int(np.argmax(np.abs(got - expected)))
        sys.exit(f"library reward differs from the standard one at state {bad}: {got[bad]} vs {expected[bad]}")


def terminal_distribution(probs, dims, side):
    """P_T(x) = u(x) * P_F(exit | x), with u(s0) = 1 and u(x) = sum_d u(x - e_d) P_F(d | x - e_d)."""
    probs = np.asarray(probs, dtype=np.float64)
    n = side**dims
    strides = [side ** (dims - 1 - d) for d in range(dims)]
    states = all_states(dims, side)
    reach = np.zeros(n)
    reach[0] = 1.0
    for i in range(1, n):
        total = 0.0
        for d in range(dims):
            if states[i, d] > 0:
                j = i - strides[d]
                total += reach[j] * probs[j, d]
        reach[i] = total
    return reach * probs[:, dims]


class Target:
    """R/Z over the grid and its modes (the states of maximal reward)."""

    def __init__(self, dims, side, r0):
        self.dims, self.side = dims, side
        reward = hypergrid_reward(all_states(dims, side), side, r0)
        self.target = reward / reward.sum()
        self.modes = set(np.flatnonzero(reward >= reward.max() * (1 - 1e-9)).tolist())

    def l1(self, probs):
        """Exact sum_x |P_T(x) - R(x)/Z|, in [0, 2]."""
        return float(np.abs(terminal_distribution(probs, self.dims, self.side) - self.target).sum())

    def index(self, states):
        """Row-major indices of an (n, dims) array of coordinates."""
        return np.ravel_multi_index(np.asarray(states).T, (self.side,) * self.dims)


def peak_rss_bytes():
    """Peak resident set size, read the same way as flowlab reads its own (VmHWM)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    # Elsewhere ru_maxrss is the closest figure (kilobytes on Linux, bytes on macOS).
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def add_common_args(parser):
    """The settings every peer script takes, with flowlab's defaults of the comparison."""
    parser.add_argument("--dims", type=int, default=4)
    parser.add_argument("--size", type=int, default=8)
    parser.add_argument("--r0", type=float, default=0.1)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lr-logz", type=float, default=0.1)
    parser.add_argument("--trajectories", type=int, default=16000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-every", type=int, default=0,
                        help="also print {trajectories, l1, modes_found} every K trajectories "
                             "(evaluation time is not counted as training)")
    parser.add_argument("--version", action="store_true", help="print library versions and exit")


def emit(obj):
    print(json.dumps(obj), flush=True)


def _self_test(dims=4, side=8, r0=0.1):
    """Checks the dynamic programme on two policies whose answer is known independently."""
    states = all_states(dims, side)
    n = len(states)
    strides = [side ** (dims - 1 - d) for d in range(dims)]
    target = Target(dims, side, r0)
    reward = hypergrid_reward(states, side, r0)
    # A policy built from flows with a uniform P_B samples exactly R/Z, so its L1 must be ~0:
    # F(s) = R(s) + sum_d F(s + e_d) / (number of parents of s + e_d), visited children first.
    flow = np.zeros(n)
    for i in range(n - 1, -1, -1):
        flow[i] = reward[i] + sum(
            flow[i + strides[d]] / np.count_nonzero(states[i + strides[d]])
            for d in range(dims) if states[i, d] < side - 1
        )
    probs = np.zeros((n, dims + 1))
    for i in range(n):
        probs[i, dims] = reward[i] / flow[i]
        for d in range(dims):
            if states[i, d] < side - 1:
                probs[i, d] = flow[i + strides[d]] / np.count_nonzero(states[i + strides[d]]) / flow[i]
    assert np.allclose(probs.sum(axis=1), 1.0)
    print(f"flow-matched policy: sum-L1 {target.l1(probs):.2e} (expected ~0)")
    # A uniform policy over the valid actions, against a Monte Carlo estimate of its terminals.
    valid = np.concatenate([states < side - 1, np.ones((n, 1), dtype=bool)], axis=1)
    uniform = valid / valid.sum(axis=1, keepdims=True)
    exact = terminal_distribution(uniform, dims, side)
    rng = np.random.default_rng(0)
    samples = 200_000
    counts = np.zeros(n)
    cur = np.zeros(samples, dtype=np.int64)
    alive = np.ones(samples, dtype=bool)
    while alive.any():
        p = uniform[cur[alive]]
        act = (rng.random(len(p))[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
        idx = np.flatnonzero(alive)
        stop = act == dims
        np.add.at(counts, cur[idx[stop]], 1)
        alive[idx[stop]] = False
        cur[idx[~stop]] += np.asarray(strides)[act[~stop]]
    print(f"uniform policy: mass {exact.sum():.12f}, sum-L1 to R/Z {target.l1(uniform):.4f}, "
          f"sum-L1 to {samples} Monte Carlo samples {np.abs(counts / samples - exact).sum():.4f}")


if __name__ == "__main__":
    _self_test()
