"""Cross-check ``backends.common.influence`` against pyDVL's influence functions (not run by
``make bench``; pyDVL is NOT a dependency of the workbench).

pyDVL is installed into a throwaway folder, never into the venv::

    .venv/bin/pip install --no-deps --target /tmp/h15b-pkgs pydvl==0.10.0 dask distributed \\
        tornado msgpack tblib zict sortedcontainers cloudpickle toolz partd locket click fsspec \\
        zarr numcodecs donfig google-crc32c lazy-importer deprecated wrapt pyDeprecate pandas \\
        tzdata python-dateutil
    PYTHONPATH=/tmp/h15b-pkgs .venv/bin/python benchmarks/compare_pydvl.py

On a small model (a 5-8-3 tanh MLP, 64 training points; all 75 parameters, and the model is not
at a minimum, so H is damped by λ = 0.5) it compares the full influence matrix
``I(z, t) = −∇ℓ(t)ᵀ (H + λI)⁻¹ ∇ℓ(z)`` of pyDVL's ``DirectInfluence`` and ``CgInfluence`` with
this module's ``exact`` and ``cg``.  pyDVL 0.10 returns ``+∇ℓ(t)ᵀ (H + λI)⁻¹ ∇ℓ(z)`` (the other
sign convention), so its values are negated before the comparison.  Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    import numpy as np
    import torch
    from pydvl.influence.torch import CgInfluence, DirectInfluence
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from backends.common.influence import FlatModel, cg_solve, exact_solve, spearman

    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    x, y = torch.randn(64, 5, dtype=torch.float64), torch.randint(0, 3, (64,))
    xt, yt = torch.randn(20, 5, dtype=torch.float64), torch.randint(0, 3, (20,))
    damping = 0.5
    loss = nn.functional.cross_entropy
    flat = FlatModel(model, lambda o, t: loss(o, t, reduction="none"))
    gz, gt = flat.per_example_grads(x, y), flat.per_example_grads(xt, yt)
    ours_exact = -(gz @ exact_solve(flat.hessian(x, y), gt, damping).T).T.numpy()
    solved, _ = cg_solve(flat.hvp_fn(x, y), gt, damping, tol=1e-12, max_iter=1000)
    ours_cg = -(gz @ solved.T).T.numpy()
    loader = DataLoader(TensorDataset(x, y), batch_size=64)
    direct = DirectInfluence(model, loss, regularization=damping).fit(loader)
    theirs = direct.influences(xt, yt, x, y).detach().numpy()
    cg = CgInfluence(model, loss, regularization=damping, rtol=1e-10, atol=1e-12, maxiter=1000)
    theirs_cg = cg.fit(loader).influences(xt, yt, x, y).detach().numpy()

    def rel(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.abs(a - b).max() / np.abs(b).max())

    print(
        json.dumps(
            {
                "check": "pydvl",
                "parameters": flat.dim,
                # pyDVL 0.10's "up" influence is +∇ℓ(t)ᵀ H⁻¹ ∇ℓ(z): the opposite sign convention
                "sign_agreement_with_pydvl": float(np.mean(np.sign(ours_exact) == np.sign(theirs))),
                "max_rel_diff_exact_vs_minus_pydvl_direct": rel(ours_exact, -theirs),
                "max_rel_diff_cg_vs_minus_pydvl_cg": rel(ours_cg, -theirs_cg),
                "spearman_scores_vs_pydvl": spearman(
                    np.abs(ours_exact).mean(0), np.abs(theirs).mean(0)
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
