"""A GRU4Rec-style sequential baseline (Hidasi et al. 2016; Hidasi & Czapp 2023) with a softmax next-item loss.

A one-layer GRU reads each user's time-ordered history (the last ``max_len`` items) and, at
every position, predicts the next item with a softmax cross-entropy, over ``negatives`` shared
uniform negatives per step (as :class:`~kgrec.evaluation.baselines.sasrec.SASRec`) or over
all items (``negatives=None``). Item embeddings are tied: an item's score is the GRU state
against the same embedding it is read with. A user's scores are the last state against every
item. Early stopping on validation NDCG@20 when validation data are given.

**Ties in time are not an order.** Interactions that share a timestamp (a basket, a month of
tagging) carry no order among themselves: :func:`tie_shuffled_histories` orders each user's
history by time and, within one timestamp, by a seeded random permutation. Training draws a
fresh permutation every epoch (so no tie order is learned as if it were information); the
history a user is scored from uses one permutation fixed by the seed. Item numbers and file
order are never used to break ties.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kgrec.evaluation.baselines.base import EarlyStopping, FitContext, validation_ndcg
from kgrec.evaluation.split import Interactions

log = logging.getLogger(__name__)


def tie_shuffled_histories(data: Interactions, rng: np.random.Generator) -> list[np.ndarray]:
    """Item numbers per user in time order; interactions with the same timestamp in a random order.

    Args:
        data: the interactions.
        rng: the source of the permutation among equal timestamps (a new draw gives a new
            order of every tie group and leaves the order between timestamps as it is).

    Returns:
        ``data.n_users`` arrays of item numbers (empty for users without interactions).
    """
    key = rng.permutation(len(data))
    order = np.lexsort((key, data.times, data.users))
    u, i = data.users[order], data.items[order]
    bounds = np.searchsorted(u, np.arange(data.n_users + 1))
    return [i[bounds[k] : bounds[k + 1]] for k in range(data.n_users)]


class GRU4RecNet(nn.Module):
    """Item embedding → dropout → GRU → dropout; states are compared with the same item embeddings."""

    def __init__(self, n_items: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.item = nn.Embedding(n_items + 1, hidden, padding_idx=0)  # 0 = padding, item number + 1
        self.bias = nn.Parameter(torch.zeros(n_items))  # GRU4Rec's output bias: an item's score offset
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.drop_in = nn.Dropout(dropout)
        self.drop_out = nn.Dropout(dropout)
        nn.init.normal_(self.item.weight, std=hidden**-0.5)
        with torch.no_grad():
            self.item.weight[0].zero_()

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """States ``[B, L, hidden]`` of right-padded sequences ``[B, L]``."""
        h, _ = self.gru(self.drop_in(self.item(seq)))
        return self.drop_out(h)

    def item_matrix(self) -> torch.Tensor:
        return self.item.weight[1:]


def _pad_right(seqs: list[np.ndarray], length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, length]`` item numbers + 1 (0 = padding, at the end) and the sequence lengths."""
    out = np.zeros((len(seqs), length), dtype=np.int64)
    lens = np.zeros(len(seqs), dtype=np.int64)
    for r, s in enumerate(seqs):
        s = s[-length:]
        out[r, : len(s)] = s + 1
        lens[r] = len(s)
    return torch.from_numpy(out), torch.from_numpy(lens)


class GRU4Rec:
    """GRU4Rec with the benchmark's interface: ``fit(FitContext)``, then ``scores(users)``.

    Args:
        hidden: GRU state and item embedding size (default: 64).
        dropout: on the embeddings read and on the states (default: 0.2).
        max_len: the most recent items a user is scored from, and the training window (default: 50).
        lr: Adam learning rate (default: 2e-3).
        batch_size: users per step (default: 32).
        epochs: the most epochs (default: 300); early stopping picks fewer when validation is given.
        patience: validations without gain before stopping (default: 4).
        eval_every: epochs between validations (default: 5): training goes on for 20 epochs without gain, as
            SASRec's; on MovieLens latest-small validation NDCG@20 stays on a popularity-level plateau from
            epoch 4 to about 14 before it climbs (0.054 -> 0.12 at epoch 40), where 4 x 2 epochs stopped at 12.
        negatives: shared uniform negatives per step; ``None`` for a softmax over all items (default: 1024).
    """

    name = "GRU4Rec"

    def __init__(
        self,
        hidden: int = 64,
        dropout: float = 0.2,
        max_len: int = 50,
        lr: float = 2e-3,
        batch_size: int = 32,
        epochs: int = 300,
        patience: int = 4,
        eval_every: int = 5,
        negatives: int | None = 1024,
    ) -> None:
        if hidden < 1 or max_len < 2 or batch_size < 1 or epochs < 1 or patience < 1 or eval_every < 1:
            raise ValueError(
                f"GRU4Rec: hidden, batch_size, epochs, patience, eval_every must be >= 1 and max_len >= 2 "
                f"(got hidden={hidden}, max_len={max_len}, batch_size={batch_size}, epochs={epochs}, "
                f"patience={patience}, eval_every={eval_every})"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"GRU4Rec: dropout must be in [0, 1) (got {dropout})")
        self.hidden, self.dropout, self.max_len, self.lr = hidden, dropout, max_len, lr
        self.batch_size, self.epochs, self.patience, self.eval_every = batch_size, epochs, patience, eval_every
        self.negatives = negatives
        self.best_epoch = epochs
        self.epochs_run = 0
        self.val_ndcg = float("nan")
        self.val_history: list[tuple[int, float]] = []  # (epoch, validation NDCG@20) of every validation
        self.seconds_per_epoch = float("nan")

    def fit(self, ctx: FitContext) -> GRU4Rec:
        from tqdm.auto import tqdm

        torch.manual_seed(ctx.seed)
        rng = np.random.default_rng(ctx.seed)
        d = ctx.data
        self._hist = tie_shuffled_histories(d, np.random.default_rng(ctx.seed))  # the one order users are scored from
        net = GRU4RecNet(d.n_items, self.hidden, self.dropout)
        self._net = net
        opt = torch.optim.Adam(net.parameters(), lr=self.lr)
        users = np.array([u for u, h in enumerate(self._hist) if len(h) >= 2], dtype=np.int64)
        validate = ctx.validation is not None and len(ctx.validation) > 0
        stopper, times = EarlyStopping(self.patience), []
        bar = tqdm(range(1, self.epochs + 1), desc="GRU4Rec", unit="epoch", disable=not ctx.progress, leave=False)
        for epoch in bar:
            t0 = time.perf_counter()
            net.train()
            hist = tie_shuffled_histories(d, rng)  # a fresh order inside every tie group
            windows = self._windows(hist, users, rng)
            perm = rng.permutation(len(windows))
            for s in range(0, len(perm), self.batch_size):
                seqs = [windows[w] for w in perm[s : s + self.batch_size]]
                x, _ = _pad_right([q[:-1] for q in seqs], self.max_len)
                y, _ = _pad_right([q[1:] for q in seqs], self.max_len)
                h = net(x)
                valid = y > 0
                loss = self._loss(h[valid], y[valid] - 1, net, rng, d.n_items)
                opt.zero_grad()
                loss.backward()
                opt.step()
            times.append(time.perf_counter() - t0)
            self.epochs_run = epoch
            if validate and (epoch % self.eval_every == 0 or epoch == self.epochs):
                score = validation_ndcg(self, ctx, self._hist)
                self.val_history.append((epoch, score))
                bar.set_postfix(val_ndcg=f"{score:.4f}")
                log.debug("GRU4Rec epoch %d: validation NDCG@20 %.4f", epoch, score)
                if stopper.step(epoch, score, net):
                    break
        stopper.restore(net)
        if stopper.best_epoch is not None:
            self.best_epoch = stopper.best_epoch
        self.val_ndcg = stopper.best if validate else float("nan")
        self.seconds_per_epoch = float(np.mean(times)) if times else float("nan")
        return self

    def _loss(
        self, h: torch.Tensor, target: torch.Tensor, net: GRU4RecNet, rng: np.random.Generator, n_items: int
    ) -> torch.Tensor:
        items, bias = net.item_matrix(), net.bias
        if self.negatives is None or self.negatives >= n_items:
            return F.cross_entropy(h @ items.T + bias, target)
        neg = torch.from_numpy(rng.integers(0, n_items, self.negatives))
        pos_logit = (h * items[target]).sum(1, keepdim=True) + bias[target].unsqueeze(1)
        neg_logit = (h @ items[neg].T + bias[neg]).masked_fill(neg.unsqueeze(0) == target.unsqueeze(1), float("-inf"))
        return F.cross_entropy(torch.cat([pos_logit, neg_logit], 1), torch.zeros(len(target), dtype=torch.long))

    def _windows(self, hist: list[np.ndarray], users: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        """Every history of ``users`` cut into windows of at most ``max_len + 1`` consecutive items that
        overlap by one item, so that an epoch trains on every transition exactly once (as GRU4Rec does);
        the cut points move by a random offset every epoch. Each window starts from an empty state, as the
        state a user is scored from does."""
        n, out = self.max_len, []
        for u in users:
            h = hist[u]
            if len(h) <= n + 1:
                out.append(h)
                continue
            # the targets h[1:] in blocks of n, the first block of a random size in 1..n
            cuts = [1, *range(1 + int(rng.integers(1, n + 1)), len(h), n), len(h)]
            out += [h[a - 1 : b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
        return out

    def scores(self, users: np.ndarray) -> torch.Tensor:
        """``[len(users), n_items]``: the state after each user's last ``max_len`` items against every item
        (a user without history gets the state of an empty sequence: the same scores for everyone)."""
        self._net.eval()
        with torch.no_grad():
            x, lens = _pad_right([self._hist[u] for u in users], self.max_len)
            h = self._net(x)
            last = h[torch.arange(len(users)), (lens - 1).clamp(min=0)]
            empty = lens == 0
            if empty.any():
                last[empty] = 0.0
            return last @ self._net.item_matrix().T + self._net.bias
