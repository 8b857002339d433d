"""A Monte Carlo parameter sweep on Dask: Black-Scholes call prices and their sensitivities
(delta, vega, and the derivative in the strike) by pathwise derivatives, for several strikes,
on a LocalCluster of two worker processes, checked against the closed-form values.

The discounted payoff of one path, for parameters theta = (S0, sigma, K) and a standard normal
sample z, is

    payoff(theta, z) = exp(-r T) max(S_T - K, 0),  S_T = S0 exp((r - sigma^2 / 2) T + sigma sqrt(T) z)

and E[payoff] is the option's price. Its gradient in theta, averaged over the samples, estimates
the price's gradient (the pathwise method: the payoff is differentiable except where S_T = K,
which has probability zero).

The function is traced once, differentiated (`value_and_grad`), vmapped over a block of samples
of a fixed size, and compiled here. Dask ships it to the workers by pickle, with its object
code: the workers run it without compiling anything (`anvil_llvm.stats()` on every worker shows
`builds == 0`). The samples are drawn on the workers, one block per task, and only the sums of
each block come back.
"""
import time

import numpy as np
from scipy.stats import norm

import anvil_llvm as av
import anvil_llvm.numpy as anp
from anvil_llvm import ad

R, T, S0, SIGMA = 0.03, 1.0, 100.0, 0.2
STRIKES = [80.0, 90.0, 100.0, 110.0, 120.0]
SAMPLES, BLOCK = 1_000_000, 250_000


def payoff(theta, z):
    s0, sigma, strike = theta[0], theta[1], theta[2]
    s_t = s0 * anp.exp((R - 0.5 * sigma * sigma) * T + sigma * np.sqrt(T) * z)
    return np.exp(-R * T) * anp.maximum(s_t - strike, 0.0)


def closed_form(s0, sigma, strike):
    """Black-Scholes price, delta, vega and d(price)/d(strike) of a European call."""
    d1 = (np.log(s0 / strike) + (R + 0.5 * sigma ** 2) * T) / (sigma * np.sqrt(T))
    d2 = d1 - sigma * np.sqrt(T)
    discount = np.exp(-R * T)
    return np.array([s0 * norm.cdf(d1) - strike * discount * norm.cdf(d2), norm.cdf(d1),
                     s0 * norm.pdf(d1) * np.sqrt(T), -discount * norm.cdf(d2)])


def compiled():
    """value_and_grad of the payoff in theta, vmapped over a block of samples (theta shared)."""
    f = av.NumericalFunction("payoff", payoff, (av.Arg(3), av.Arg(())))
    return av.vmap(ad.value_and_grad(f), (None, 0), BLOCK).compile()


def block_sums(z, fn, theta):
    """Per block: the sums of [payoff, its gradient] and of their squares (for the error)."""
    value, grad = fn(theta, z)
    rows = np.column_stack([value, grad])
    return np.stack([rows.sum(0), (rows * rows).sum(0)])[None]


def main():
    import dask
    import dask.array as da
    from dask.distributed import Client, LocalCluster

    fn = compiled()
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        z = da.random.default_rng(2024).standard_normal(SAMPLES, chunks=BLOCK)
        start = time.perf_counter()
        sweeps = []
        for strike in STRIKES:
            theta = np.array([S0, SIGMA, strike])
            sums = z.map_blocks(block_sums, fn, theta, new_axis=(1, 2),
                                chunks=((1,) * z.numblocks[0], (2,), (4,)), dtype=float)
            sweeps.append(sums.sum(axis=0))
        results = dask.compute(*sweeps)
        elapsed = time.perf_counter() - start
        workers = client.run(av.stats)

    print(f"{len(STRIKES)} strikes x {SAMPLES:,} paths on 2 workers in {elapsed:.2f} s")
    print(f"{'strike':>7} {'':>9}{'price':>10}{'delta':>10}{'vega':>10}{'dC/dK':>10}")
    worst = 0.0
    for strike, (total, squares) in zip(STRIKES, results):
        mean = total / SAMPLES
        error = np.sqrt((squares / SAMPLES - mean ** 2) / SAMPLES)    # standard error
        exact = closed_form(S0, SIGMA, strike)
        worst = max(worst, float(np.max(np.abs(mean - exact) / error)))
        print(f"{strike:7.0f} {'MC':>9}" + "".join(f"{v:10.4f}" for v in mean))
        print(f"{'':7} {'exact':>9}" + "".join(f"{v:10.4f}" for v in exact))
    print(f"largest deviation from the closed form: {worst:.2f} standard errors")
    for address, stats in sorted(workers.items()):
        print(f"worker {address}: {stats}")
    assert worst < 5, worst
    assert all(s["builds"] == 0 and s["object_loads"] > 0 for s in workers.values()), workers
    return results, workers


if __name__ == "__main__":
    results, workers = main()
