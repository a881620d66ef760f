"""AnoGAN's batched latent search vs one sample at a time, and scoring ms/sample of every detector.

Speed does not depend on what the weights have learned, so every model is
freshly initialised (seeded) and put in eval mode; inputs are real MNIST test
images (32x32, conv nets) and real KDD rows (121 features, MLPs).

* ``search``: AnoGAN latent search over ``--n`` samples with Γ steps, once as
  one batch, once one sample at a time (same Γ, same z_1), with the speed-up
  and the largest score difference between the two (they must agree).
* ``scoring``: ms/sample of ``engine.score`` for each detector at its paper
  defaults (AnoGAN at Γ = 500, EGBAD / GANomaly / dual: one forward pass).

Usage: python benchmarks/anogan_search.py --n 64 --steps 50 --threads 2 > docs/results/anogan_search.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch
from _common import best_seconds, machine, real_inputs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64, help="samples searched")
    ap.add_argument("--steps", type=int, default=50, help="Γ for the batched vs one-at-a-time comparison")
    ap.add_argument("--score-n", type=int, default=256, help="samples scored per model")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--data-dir", default=os.environ.get("GANAD_DATA_DIR"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from ganad import engine
    from ganad.models import MODELS

    inputs = real_inputs(args.data_dir, max(args.n, args.score_n), split="test")

    out: dict = {
        "benchmark": "anogan_search",
        "machine": machine(args.threads),
        "search": {},
        "scoring_ms_per_sample": {},
    }
    for name, (spec, x) in inputs.items():
        torch.manual_seed(0)
        anogan = MODELS["anogan"](spec, search_steps=args.steps).eval()
        xb = torch.as_tensor(x[: args.n])
        batched_scores: list[torch.Tensor] = []
        single_scores: list[torch.Tensor] = []
        t_batch = best_seconds(lambda: batched_scores.append(anogan.latent_search(xb)[1]))  # noqa: B023
        t_single = best_seconds(
            lambda: single_scores.append(torch.cat([anogan.latent_search(xb[i : i + 1])[1] for i in range(len(xb))]))  # noqa: B023
        )
        diff = float((batched_scores[-1] - single_scores[-1]).abs().max() / batched_scores[-1].abs().max())
        out["search"][name] = {
            "samples": len(xb),
            "steps": args.steps,
            "batched_seconds": t_batch,
            "one_at_a_time_seconds": t_single,
            "speedup": t_single / t_batch,
            "batched_ms_per_sample_per_step": 1000 * t_batch / len(xb) / args.steps,
            "max_relative_score_difference": diff,
        }
        scoring = {}
        for key, cls in MODELS.items():
            torch.manual_seed(0)
            model = cls(spec)
            n = args.score_n if key != "anogan" else min(args.score_n, args.n)
            xs = x[:n]
            engine.score(model, xs[:8])  # warm-up
            secs = best_seconds(lambda: engine.score(model, xs), repeats=1 if key == "anogan" else 3)  # noqa: B023
            scoring[key] = {"samples": n, "ms_per_sample": 1000 * secs / n}
        a = scoring["anogan"]["ms_per_sample"]
        for key in scoring:
            scoring[key]["anogan_over_this"] = a / scoring[key]["ms_per_sample"]
        out["scoring_ms_per_sample"][name] = scoring
        print(json.dumps({name: out["search"][name]}), file=sys.stderr, flush=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
