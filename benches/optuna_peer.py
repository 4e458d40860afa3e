"""Optuna peer for benches/optimizers.sh: Optuna's samplers on the five test
problems of pf's optimizer benchmark (the definitions of
`pf_sdk::testing`, restated here), with the same budget and seeds, reporting
the median simple regret at the checkpoints and the median time to suggest
(`study.ask()`) as JSON in the schema `cargo bench --bench optimizers` writes.

Used only by benches/optimizers.sh, never by the tests or CI: GPSampler needs
torch, a 5 GB venv.
"""

import argparse
import json
import math
import statistics
import time

import optuna

PI = math.pi


def branin(p):
    x, y = p["x0"], p["x1"]
    b, c, t = 5.1 / (4 * PI * PI), 5 / PI, 1 / (8 * PI)
    return (y - b * x * x + c * x - 6) ** 2 + 10 * (1 - t) * math.cos(x) + 10


HART_ALPHA = [1.0, 1.2, 3.0, 3.2]
HART_A = [
    [10, 3, 17, 3.5, 1.7, 8],
    [0.05, 10, 17, 0.1, 8, 14],
    [3, 3.5, 1.7, 10, 17, 8],
    [17, 8, 0.05, 10, 0.1, 14],
]
HART_P = [
    [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
    [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
    [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
    [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
]


def hartmann6(p):
    x = [p[f"x{i}"] for i in range(6)]
    return -sum(
        HART_ALPHA[i]
        * math.exp(-sum(HART_A[i][j] * (x[j] - HART_P[i][j]) ** 2 for j in range(6)))
        for i in range(4)
    )


def rosenbrock4(p):
    x = [p[f"x{i}"] for i in range(4)]
    return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(3))


def ackley5(p):
    x = [p[f"x{i}"] for i in range(5)]
    n = len(x)
    sq = sum(a * a for a in x) / n
    cos = sum(math.cos(2 * PI * a) for a in x) / n
    return -20 * math.exp(-0.2 * math.sqrt(sq)) - math.exp(cos) + 20 + math.e


ACT_COST = {"gelu": 0.0, "swish": 0.25, "relu": 0.5, "tanh": 1.0}


def mixed(p):
    return (
        (p["x"] - 1) ** 2
        + (math.log10(p["lr"]) + 2) ** 2
        + ((p["n"] - 13) / 4) ** 2
        + ACT_COST[p["act"]]
    )


def floats(n, low, high):
    return {f"x{i}": optuna.distributions.FloatDistribution(low, high) for i in range(n)}


# name: (function, search space, global minimum)
PROBLEMS = {
    "branin": (
        branin,
        {
            "x0": optuna.distributions.FloatDistribution(-5, 10),
            "x1": optuna.distributions.FloatDistribution(0, 15),
        },
        0.397887357729738,
    ),
    "hartmann6": (hartmann6, floats(6, 0, 1), -3.322368011391339),
    "rosenbrock4": (rosenbrock4, floats(4, -5, 10), 0.0),
    "ackley5": (ackley5, floats(5, -32.768, 32.768), 0.0),
    "mixed": (
        mixed,
        {
            "x": optuna.distributions.FloatDistribution(-5, 5),
            "lr": optuna.distributions.FloatDistribution(1e-5, 1, log=True),
            "n": optuna.distributions.IntDistribution(0, 20),
            "act": optuna.distributions.CategoricalDistribution(["relu", "tanh", "gelu", "swish"]),
        },
        0.0,
    ),
}

SAMPLERS = {
    "optuna-random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
    # Optuna 5's default: multivariate for a single objective.
    "optuna-tpe": lambda seed: optuna.samplers.TPESampler(seed=seed),
    "optuna-tpe-univariate": lambda seed: optuna.samplers.TPESampler(seed=seed, multivariate=False),
    "optuna-gp": lambda seed: optuna.samplers.GPSampler(seed=seed),
}


def run(sampler_name, problem, trials, seed):
    """Best regret after each trial, and each ask()'s seconds."""
    fn, space, minimum = PROBLEMS[problem]
    study = optuna.create_study(direction="minimize", sampler=SAMPLERS[sampler_name](seed))
    best, curve, ask_seconds = math.inf, [], []
    for _ in range(trials):
        t0 = time.perf_counter()
        trial = study.ask(space)
        ask_seconds.append(time.perf_counter() - t0)
        value = fn(trial.params)
        study.tell(trial, value)
        best = min(best, value - minimum)
        curve.append(best)
    return curve, ask_seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--checkpoints", default="10,25,50")
    ap.add_argument(
        "--samplers", default="optuna-random,optuna-tpe,optuna-tpe-univariate,optuna-gp"
    )
    ap.add_argument("--problems", default=",".join(PROBLEMS))
    ap.add_argument("--threads", type=int, default=1, help="torch threads (GPSampler)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        import torch

        torch.set_num_threads(a.threads)
    except ImportError:
        pass
    checkpoints = [int(c) for c in a.checkpoints.split(",")]
    out = {"trials": a.trials, "seeds": a.seeds, "optuna": optuna.__version__, "results": []}
    for sampler in a.samplers.split(","):
        for problem in a.problems.split(","):
            curves, asks = [], []
            t0 = time.perf_counter()
            for seed in range(a.seeds):
                curve, ask_seconds = run(sampler, problem, a.trials, seed)
                curves.append(curve)
                asks.extend(ask_seconds)
            row = {
                "optimizer": sampler,
                "problem": problem,
                "median_regret": {
                    str(c): statistics.median(curve[c - 1] for curve in curves)
                    for c in checkpoints
                    if c <= a.trials
                },
                "final_regrets": [curve[-1] for curve in curves],
                "median_suggest_ms": statistics.median(asks) * 1e3,
                "seconds": time.perf_counter() - t0,
            }
            out["results"].append(row)
            print(
                f"{sampler:<14} {problem:<12} regret@{a.trials} "
                f"{row['median_regret'][str(a.trials)]:.4g}  suggest {row['median_suggest_ms']:.2f} ms",
                flush=True,
            )
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
