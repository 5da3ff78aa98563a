"""Which (query, key) pairs an attention pattern keeps, and which tiles of the array it touches.

Every pattern here gives each query p an interval of visible keys, ``lo[p] <= m < hi[p]``
(empty when ``lo >= hi``), in the layout the hardware sees: for routing that is the *gathered*
layout, where each cluster's queries and keys are contiguous rows. From those intervals come

* :meth:`Pattern.mask` -- the golden model's mask hook (``mask(p_idx, m_idx) -> bool``, see
  :data:`fusemax.sw.golden.Mask`), without materialising P x M;
* :func:`tiles_touched` -- the (query block, key chunk) tiles an array of ``rows`` keys x
  ``cols`` queries must run; every other tile is skipped (a tile whose keys no query of the
  block sees leaves RM, RD and RNV unchanged, so skipping it changes no bit);
* :func:`tile_plan` -- the same tiles, each marked ``full`` (every pair of real queries and keys
  in it is visible: no mask needed) or ``partial`` (the tile needs a per-element mask);
  :func:`tile_plan_with_ranges` also returns the key intervals it came from;
* :func:`tile_stats` -- counts and the fraction of tiles and scores skipped.

Patterns (query p, key m, ``d = p + M - P``: the key aligned with p, as in causal attention
over a KV cache):

=======================  ====================================================================
``Dense()``              every key
``Causal()``             m <= d
``Band(before, after)``  d - before <= m <= d + after; ``sliding_window(W)`` = Band(W - 1, 0)
                         (FlashAttention window (W-1, 0), the sink models' ``window_size``)
``BlockLocal(...)``      lucidrains/local-attention: windows of ``window`` tokens; window i
                         sees windows i - look_backward .. i + look_forward, causal inside
``Routing(...)``         gathered clusters: cluster c's queries see cluster c's keys
                         (block-diagonal), optionally causal within the cluster
=======================  ====================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from fusemax.errors import FuseMaxError

__all__ = ["Pattern", "Dense", "Causal", "Band", "sliding_window", "BlockLocal", "Routing",
           "tiles_touched", "tile_plan", "tile_plan_with_ranges", "tile_stats", "positive_int"]


def positive_int(name: str, value, minimum: int = 1) -> int:
    """``value`` as an int, or FuseMaxError naming ``name`` unless it is an integer >= minimum."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise FuseMaxError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class Pattern:
    """A set of visible (query, key) pairs given as one key interval per query."""

    def key_range(self, p_idx: np.ndarray, P: int, M: int) -> tuple[np.ndarray, np.ndarray]:
        """``(lo, hi)``: query ``p_idx[i]`` sees the keys ``lo[i] <= m < hi[i]`` (clipped to
        [0, M); ``lo >= hi`` means none)."""
        raise NotImplementedError

    def check(self, P: int, M: int) -> None:
        """FuseMaxError when the pattern cannot apply to P queries and M keys."""
        positive_int("P (queries)", P)
        positive_int("M (keys)", M)

    def ranges(self, P: int, M: int) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`key_range` of every query, checked and clipped."""
        self.check(P, M)
        lo, hi = self.key_range(np.arange(P), P, M)
        lo = np.clip(np.asarray(lo, np.int64), 0, M)
        hi = np.clip(np.asarray(hi, np.int64), 0, M)
        return lo, np.maximum(hi, lo)

    def mask(self, P: int, M: int):
        """The golden model's mask hook for P queries and M keys."""
        self.check(P, M)

        def mask(p_idx: np.ndarray, m_idx: np.ndarray) -> np.ndarray:
            lo, hi = self.key_range(np.asarray(p_idx), P, M)
            m = np.asarray(m_idx)[None, :]
            return (m >= np.asarray(lo)[:, None]) & (m < np.asarray(hi)[:, None])

        return mask

    def dense(self, P: int, M: int) -> np.ndarray:
        """The whole (P, M) boolean mask (for references and tests; P x M memory)."""
        return self.mask(P, M)(np.arange(P), np.arange(M))


@dataclass(frozen=True)
class Dense(Pattern):
    """Every query sees every key."""

    def key_range(self, p_idx, P, M):
        return np.zeros(len(p_idx), np.int64), np.full(len(p_idx), M, np.int64)


@dataclass(frozen=True)
class Causal(Pattern):
    """Query p sees keys m <= p + M - P (aligned at the end of the keys)."""

    def key_range(self, p_idx, P, M):
        return np.zeros(len(p_idx), np.int64), np.asarray(p_idx, np.int64) + (M - P) + 1


@dataclass(frozen=True)
class Band(Pattern):
    """Query p sees keys d - before <= m <= d + after, d = p + M - P."""

    before: int
    after: int = 0

    def __post_init__(self):
        positive_int("Band.before", self.before, 0)
        positive_int("Band.after", self.after, 0)

    def key_range(self, p_idx, P, M):
        d = np.asarray(p_idx, np.int64) + (M - P)
        return d - self.before, d + self.after + 1


def sliding_window(window: int) -> Band:
    """Causal sliding window of ``window`` keys ending at the query's own position
    (FlashAttention ``window_size=(window-1, 0)``; lucidrains ``exact_windowsize`` causal with
    ``window_size * look_backward = window - 1``)."""
    return Band(positive_int("window", window) - 1, 0)


@dataclass(frozen=True)
class BlockLocal(Pattern):
    """lucidrains/local-attention ``LocalAttention`` without ``exact_windowsize``: tokens are cut
    into windows of ``window``; a query in window i sees the keys of windows
    i - look_backward .. i + look_forward that exist, and with ``causal`` only keys m <= p.
    Self-attention (P = M); the sequence need not be a multiple of the window (the missing
    keys of the last window are padding, which the official code masks as well)."""

    window: int
    look_backward: int = 1
    look_forward: int = 0
    causal: bool = True

    def __post_init__(self):
        positive_int("BlockLocal.window", self.window)
        positive_int("BlockLocal.look_backward", self.look_backward, 0)
        positive_int("BlockLocal.look_forward", self.look_forward, 0)
        if self.causal and self.look_forward:
            raise FuseMaxError("BlockLocal: a causal pattern cannot look forward "
                               f"(look_forward = {self.look_forward})")

    def check(self, P, M):
        super().check(P, M)
        if P != M:
            raise FuseMaxError(f"BlockLocal is self-attention: P = {P} queries but M = {M} keys")

    def key_range(self, p_idx, P, M):
        p = np.asarray(p_idx, np.int64)
        w = p // self.window
        lo = (w - self.look_backward) * self.window
        hi = (w + self.look_forward + 1) * self.window
        if self.causal:
            hi = np.minimum(hi, p + 1)
        return lo, hi


@dataclass(frozen=True)
class Routing(Pattern):
    """Clusters gathered into contiguous rows: cluster c owns queries
    ``q_offsets[c] .. q_offsets[c+1]`` and keys ``k_offsets[c] .. k_offsets[c+1]`` of the
    gathered layout, and its queries see exactly its keys (block-diagonal). With ``causal``,
    query i of a cluster sees its keys j <= i (Google's routing heads: indices sorted by
    position, shared q/k; needs equal query and key counts per cluster)."""

    q_sizes: tuple[int, ...]
    k_sizes: tuple[int, ...]
    causal: bool = False

    def __post_init__(self):
        q = tuple(int(positive_int("cluster query count", s, 0)) for s in self.q_sizes)
        k = tuple(int(positive_int("cluster key count", s, 0)) for s in self.k_sizes)
        if not q:
            raise FuseMaxError("Routing needs at least one cluster")
        if len(q) != len(k):
            raise FuseMaxError(f"Routing: {len(q)} query clusters but {len(k)} key clusters")
        if self.causal and q != k:
            raise FuseMaxError("causal Routing needs as many queries as keys in every cluster")
        object.__setattr__(self, "q_sizes", q)
        object.__setattr__(self, "k_sizes", k)

    @classmethod
    def uniform(cls, clusters: int, window: int, causal: bool = False) -> "Routing":
        """``clusters`` clusters of ``window`` queries and ``window`` keys each (the Routing
        Transformer's top-w selection)."""
        positive_int("clusters", clusters)
        positive_int("window", window)
        return cls((window,) * clusters, (window,) * clusters, causal)

    @classmethod
    def from_indices(cls, q_index: Sequence, k_index: Sequence, causal: bool = False) -> "Routing":
        """From the per-cluster token lists of a routing step (``route_topw``): one sequence of
        token indices per cluster, for queries and for keys."""
        return cls(tuple(len(ix) for ix in q_index), tuple(len(ix) for ix in k_index), causal)

    @property
    def q_offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.q_sizes)]).astype(np.int64)

    @property
    def k_offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.k_sizes)]).astype(np.int64)

    def check(self, P, M):
        super().check(P, M)
        if P != sum(self.q_sizes) or M != sum(self.k_sizes):
            raise FuseMaxError(
                f"Routing with {len(self.q_sizes)} clusters gathers {sum(self.q_sizes)} queries "
                f"and {sum(self.k_sizes)} keys, but the arrays have P = {P}, M = {M}")

    def key_range(self, p_idx, P, M):
        p = np.asarray(p_idx, np.int64)
        qo, ko = self.q_offsets, self.k_offsets
        c = np.searchsorted(qo, p, side="right") - 1
        lo, hi = ko[c], ko[c + 1]
        if self.causal:
            hi = np.minimum(hi, lo + (p - qo[c]) + 1)
        return lo, hi


# ------------------------------------------------------------------------------- tiles

def _blocks(P: int, M: int, rows: int, cols: int) -> tuple[int, int]:
    positive_int("rows", rows)
    positive_int("cols", cols)
    return -(-P // cols), -(-M // rows)


def tile_plan(pattern: Pattern, M: int, P: int, rows: int, cols: int) -> list[tuple[int, int, str]]:
    """``(p_block, m_chunk, kind)`` for every tile the pattern touches, by query block then key
    chunk. Query block ``i`` holds queries ``i*cols .. i*cols + cols - 1`` (those < P), chunk
    ``j`` keys ``j*rows .. j*rows + rows - 1`` (those < M). ``kind`` is ``"full"`` when every
    real (query, key) pair of the tile is visible, else ``"partial"`` (needs a mask)."""
    return tile_plan_with_ranges(pattern, M, P, rows, cols)[0]


def tile_plan_with_ranges(pattern: Pattern, M: int, P: int, rows: int, cols: int):
    """``(plan, lo, hi)``: :func:`tile_plan` and the key ranges of :meth:`Pattern.ranges` it
    was computed from (one call of ``ranges``)."""
    lo, hi = pattern.ranges(P, M)
    p2, m1 = _blocks(P, M, rows, cols)
    out: list[tuple[int, int, str]] = []
    for i in range(p2):
        qlo, qhi = lo[i * cols:(i + 1) * cols], hi[i * cols:(i + 1) * cols]
        seen = qhi > qlo
        if not seen.any():
            continue
        first = qlo[seen] // rows
        last = (qhi[seen] - 1) // rows
        order = np.argsort(first, kind="stable")
        chunks: list[int] = []
        run_lo, run_hi = int(first[order[0]]), int(last[order[0]])
        for a, b in zip(first[order[1:]], last[order[1:]]):  # merge the chunk intervals
            if a > run_hi + 1:
                chunks.extend(range(run_lo, run_hi + 1))
                run_lo, run_hi = int(a), int(b)
            else:
                run_hi = max(run_hi, int(b))
        chunks.extend(range(run_lo, run_hi + 1))
        for j in chunks:
            k0, k1 = j * rows, min(M, (j + 1) * rows)
            full = bool(np.all((qlo <= k0) & (qhi >= k1)))
            out.append((i, j, "full" if full else "partial"))
    return out, lo, hi


def tiles_touched(pattern: Pattern, M: int, P: int, rows: int, cols: int) -> list[tuple[int, int]]:
    """The ``(p_block, m_chunk)`` tiles an array of ``rows`` keys x ``cols`` queries runs for
    ``pattern`` over P queries and M keys, sorted by query block then chunk; every other tile
    of the P2 x M1 grid (P2 = ceil(P/cols), M1 = ceil(M/rows)) is skipped."""
    return [(i, j) for i, j, _ in tile_plan(pattern, M, P, rows, cols)]


def tile_stats(pattern: Pattern, M: int, P: int, rows: int, cols: int) -> dict:
    """Tiles touched (full / partial) of the P2 x M1 grid, the fraction skipped, and the
    fraction of the P x M scores the pattern keeps."""
    plan, lo, hi = tile_plan_with_ranges(pattern, M, P, rows, cols)
    p2, m1 = _blocks(P, M, rows, cols)
    touched = len(plan)
    return {
        "pattern": repr(pattern), "M": M, "P": P, "rows": rows, "cols": cols,
        "tiles": p2 * m1, "touched": touched,
        "full": sum(1 for t in plan if t[2] == "full"),
        "partial": sum(1 for t in plan if t[2] == "partial"),
        "skipped_fraction": 1.0 - touched / (p2 * m1),
        "scores_kept": int(np.sum(hi - lo)),
        "scores_fraction": float(np.sum(hi - lo)) / (P * M),
    }
