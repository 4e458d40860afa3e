"""How much a 20-seed verdict of benches/optimizers.sh depends on the seeds.

Reads two result files of the optimizer benchmark written with many seeds
(pf's `cargo bench --bench optimizers -- --seeds 200 ... --out A.json` and
`benches/optuna_peer.py --seeds 200 ... --out B.json`) and, for each pair
OURS=PEER, prints both medians of the final regret per problem over all
seeds, then the share of 2,000 random draws of 20 seeds per side in which
OURS is at or below PEER on each problem and on at least 4 of 5.

    python3 benches/compare_seeds.py A.json B.json tpe=optuna-tpe gp=optuna-gp
"""

import json
import random
import statistics
import sys


def finals(path):
    rows = json.load(open(path))["results"]
    return {(r["optimizer"], r["problem"]): r["final_regrets"] for r in rows}


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    runs = {**finals(sys.argv[1]), **finals(sys.argv[2])}
    rng = random.Random(0)
    draws, size = 2000, 20
    for pair in sys.argv[3:]:
        ours, peer = pair.split("=")
        problems = [p for (o, p) in runs if o == ours and (peer, p) in runs]
        print(f"{ours} against {peer}:")
        for p in problems:
            a, b = runs[(ours, p)], runs[(peer, p)]
            print(
                f"  {p:<12} median over {len(a)} / {len(b)} seeds: "
                f"{statistics.median(a):.4g} vs {statistics.median(b):.4g}"
            )
        wins = {p: 0 for p in problems}
        four = 0
        for _ in range(draws):
            won = 0
            for p in problems:
                a = statistics.median(rng.sample(runs[(ours, p)], size))
                b = statistics.median(rng.sample(runs[(peer, p)], size))
                if a <= b:
                    won += 1
                    wins[p] += 1
            four += won >= min(4, len(problems))
        shares = ", ".join(f"{p} {wins[p] / draws:.2f}" for p in problems)
        print(f"  at or below in {size}-seed draws: {shares}")
        need = min(4, len(problems))
        print(f"  at or below on >= {need} of {len(problems)}: {four / draws:.2f} of draws\n")


if __name__ == "__main__":
    main()
