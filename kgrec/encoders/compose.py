"""User text vectors composed from item text vectors (``model.user_text = "compose"``; issue 15).

Encoding every user's behaviour text is the bound of training at scale (two behaviour texts per user, one for the
fit inside validation and one for the final fit, ~70 texts/s on one CPU thread). The behaviour text is mostly the
titles of the user's newest items, which the item texts already hold; so a composed user vector is the mean-pooling
view of that text, without running the encoder on it:

    u = normalise( (1 − ρ) · Σ_i w_i e_i / Σ_i w_i  +  ρ · o ),   ρ = c_o / (c_o + Σ_i w_i c_i)

with ``e_i`` the (unit) text vectors of the user's newest items (``w_i``: their weights in the window, tie groups
sharing their positions), ``o`` the encoding of the user's own text (profile, tags, interaction texts:
:func:`kgrec.encoders.behaviour.own_texts`; zero when there is none), and ``c`` character counts (an item's title
plus its separator, the own text's length): each part weighs what its share of the behaviour text would, as the
encoder's mean over tokens weighs it. Only the own texts are encoded, and only for users who have one.
"""

from __future__ import annotations

import numpy as np

__all__ = ["compose"]


def compose(
    item_vectors: np.ndarray,
    idx: np.ndarray,
    weight: np.ndarray,
    item_chars: np.ndarray,
    own: np.ndarray | None = None,
    own_chars: np.ndarray | None = None,
    *,
    chunk: int = 4096,
) -> np.ndarray:
    """``[B, d]`` unit user vectors (zero rows for a user with neither items nor own text).

    Args:
        item_vectors: ``[n_items, d]`` item text vectors (rows unit length, or zero for an item without text).
        idx: ``[B, W]`` item numbers of each user's window (any value where ``weight`` is 0).
        weight: ``[B, W]`` weights of those items (0 on padding).
        item_chars: ``[n_items]`` characters each item takes in a behaviour text (its title and separator).
        own: ``[B, d]`` encodings of the users' own texts (zero rows: none); None = no user has one.
        own_chars: ``[B]`` lengths of those texts.
        chunk: users composed at a time (memory: ``chunk × W × d`` floats).
    """
    idx = np.asarray(idx, dtype=np.int64)
    weight = np.asarray(weight, dtype=np.float32)
    if len(idx) > chunk:  # the gathered [B, W, d] vectors of a million users would not fit: a chunk at a time
        return np.concatenate(
            [
                compose(
                    item_vectors,
                    idx[s : s + chunk],
                    weight[s : s + chunk],
                    item_chars,
                    None if own is None else own[s : s + chunk],
                    None if own_chars is None else own_chars[s : s + chunk],
                    chunk=chunk,
                )
                for s in range(0, len(idx), chunk)
            ]
        )
    vec = item_vectors[idx]  # [B, W, d]
    has_text = np.abs(vec).sum(2) > 0
    w = np.where(has_text, weight, 0.0).astype(np.float32)
    total = w.sum(1)
    items = np.einsum("bw,bwd->bd", w, vec) / np.maximum(total, 1e-12)[:, None]
    c_items = (w * np.asarray(item_chars, dtype=np.float32)[idx]).sum(1)
    if own is None:
        out = items
    else:
        c_own = np.where(np.abs(own).sum(1) > 0, np.asarray(own_chars, dtype=np.float32), 0.0)
        rho = np.where(c_own > 0, c_own / np.maximum(c_own + c_items, 1e-12), 0.0)[:, None]
        out = (1.0 - rho) * items + rho * own
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    return np.where(norm > 0, out / np.maximum(norm, 1e-12), 0.0).astype(np.float32)
