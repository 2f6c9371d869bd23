"""LightGCN (He et al. 2020) with torch-geometric's implementation and the paper's BPR loss.

Users and items are nodes of one bipartite graph; ``torch_geometric.nn.models.LightGCN``
propagates learned embeddings (symmetric normalisation, mean over layers); each step
samples one uniform negative item per positive interaction. Early stopping on validation
NDCG@20 when validation data are given.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import torch

from kgrec.evaluation.baselines.base import EarlyStopping, FitContext, validation_ndcg


class LightGCN:
    name = "LightGCN"

    def __init__(
        self,
        dim: int = 64,
        layers: int = 3,
        lr: float = 5e-3,
        l2: float = 1e-4,
        batch_size: int = 8192,
        epochs: int = 300,
        patience: int = 5,
        eval_every: int = 5,
    ) -> None:
        self.dim, self.layers, self.lr, self.l2 = dim, layers, lr, l2
        self.batch_size, self.epochs, self.patience, self.eval_every = batch_size, epochs, patience, eval_every
        self.best_epoch = epochs
        self.val_ndcg = float("nan")
        self.seconds_per_epoch = float("nan")

    def fit(self, ctx: FitContext) -> LightGCN:
        with warnings.catch_warnings():  # importing torch_geometric warns of torch.jit.script (issue 18 point 6)
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
            from torch_geometric.nn.models import LightGCN as PygLightGCN
        from tqdm.auto import tqdm

        from kgrec.encoders.graph import symmetric_lgconv

        torch.manual_seed(ctx.seed)
        rng = np.random.default_rng(ctx.seed)
        d = ctx.data
        nu, ni = d.n_users, d.n_items
        src = torch.from_numpy(d.users)
        dst = torch.from_numpy(d.items) + nu
        edge_index = torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])
        # normalise once (D^-1/2 A D^-1/2) and propagate over a sparse matrix: the model's own
        # per-call gcn_norm over the edge list costs more than the rest of a training step
        from torch_geometric.utils import to_torch_csr_tensor

        deg = torch.bincount(edge_index[0], minlength=nu + ni).float().clamp_min(1)
        w = deg[edge_index[0]].rsqrt() * deg[edge_index[1]].rsqrt()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)
            self._edge_index = to_torch_csr_tensor(edge_index, w, size=(nu + ni, nu + ni))
        self._nu = nu
        self._model = PygLightGCN(nu + ni, self.dim, self.layers, normalize=False)
        # the same LGConv math; its backward multiplies by the (symmetric) matrix itself instead of
        # transposing and re-sorting it at every step (40% of a step's time in the profile)
        self._model.convs = torch.nn.ModuleList([symmetric_lgconv() for _ in range(self.layers)])
        opt = torch.optim.Adam(self._model.parameters(), lr=self.lr)
        self._hist = d.by_user()
        validate = ctx.validation is not None and len(ctx.validation) > 0
        stopper, times = EarlyStopping(self.patience), []
        n = len(d)
        bar = tqdm(range(1, self.epochs + 1), desc="LightGCN", unit="epoch", disable=not ctx.progress, leave=False)
        for epoch in bar:
            t0 = time.perf_counter()
            self._model.train()
            perm = rng.permutation(n)
            for s in range(0, n, self.batch_size):
                b = perm[s : s + self.batch_size]
                u = torch.from_numpy(d.users[b])
                pos = torch.from_numpy(d.items[b]) + nu
                neg = torch.from_numpy(rng.integers(0, ni, len(b))) + nu
                label_index = torch.stack([torch.cat([u, u]), torch.cat([pos, neg])])
                rank = self._model(self._edge_index, label_index)
                pos_rank, neg_rank = rank.chunk(2)
                loss = self._model.recommendation_loss(
                    pos_rank, neg_rank, node_id=label_index.unique(), lambda_reg=self.l2
                )
                opt.zero_grad()
                loss.backward()
                opt.step()
            times.append(time.perf_counter() - t0)
            self._emb = None
            if validate and (epoch % self.eval_every == 0 or epoch == self.epochs):
                score = validation_ndcg(self, ctx, self._hist)
                bar.set_postfix(val_ndcg=f"{score:.4f}")
                if stopper.step(epoch, score, self._model):
                    break
        stopper.restore(self._model)
        if stopper.best_epoch is not None:
            self.best_epoch = stopper.best_epoch
        self._emb = None
        self.val_ndcg = stopper.best
        self.seconds_per_epoch = float(np.mean(times)) if times else float("nan")
        return self

    def scores(self, users: np.ndarray) -> torch.Tensor:
        e = self._emb
        if e is None:
            self._model.eval()
            with torch.no_grad():
                e = self._emb = self._model.get_embedding(self._edge_index)
        return e[torch.from_numpy(users)] @ e[self._nu :].T
