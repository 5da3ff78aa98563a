"""Float64 references of the attention variants, transliterated from each official code base.

These are written from the official code (pinned in docs/variants.md), line by line where the
code is short, and never through the cascade evaluator: they are what the built-in cascades
(``fusemax/sw/library/*.cas``) and the bit-exact models (:mod:`fusemax.sw.golden_variants`) are
checked against. Constants, epsilons and clamps are the official ones.

Arrays use the machine-learning layout of :mod:`fusemax.sw.attention_io`: ``q`` (B,H,P,E),
``k`` (B,H,M,E), ``v`` (B,H,M,F), result (B,H,P,F); 2-D arrays (no B, H) are accepted and
give 2-D results. ``scale`` is the score scale (default 1/sqrt(E), as every official code base
here except Flowformer, which has none). "Causal" means query p sees key m iff m <= p + M - P.

=============================  ===============================================================
function                       official source
=============================  ===============================================================
:func:`kv_bias_attention`      sail-sg/Attention-Sink ``lit_gpt/model_kv_bias.py`` (k_bias,
                               kv_bias: prepend a zero query, k*, v*; drop row 0)
:func:`softmax1_attention`     softmax-1 (Miller, "Attention is off by one")
:func:`sigmoid_attention`      sail-sg/Attention-Sink ``lit_gpt/model_attn_sim.py``
                               ``eager_scaled_dot_product_attention``
:func:`attention_entropy`      Nandan91/entropy-guided-attention-llm ``entropy_regularization.py``
:func:`entropy_regularization_loss`  the same file, ``EntropyRegularization.compute_loss``
:func:`act_calibration`        GATECH-EIC/ACT ``models/llama_modelling_aug.py``
                               ``atten_process_eval``
:func:`flow_attention`         thuml/Flowformer ``Flow_Attention.py`` (and per-task variants,
:func:`flow_attention_causal`  :data:`FLOW_VARIANTS`)
:func:`masked_softmax_attention`  dense softmax under a :mod:`fusemax.sw.patterns` pattern
:func:`lucidrains_local_attention`  lucidrains/local-attention ``LocalAttention.forward``
:func:`routing_attention`      lucidrains/routing-transformer ``KmeansAttention.forward``
                               (plus the host side: :func:`route_topw`, :func:`gather_clusters`,
                               :func:`scatter_mean`, and ``Kmeans.init``:
                               :func:`kmeans_init_means`)
=============================  ===============================================================
"""

from __future__ import annotations

import math

import numpy as np

from fusemax.errors import FuseMaxError
from fusemax.sw.attention_io import attention_dims, prepend_bias, reference_attention
from fusemax.sw.patterns import Causal, Pattern

__all__ = [
    "kv_bias_attention", "softmax1_attention", "sigmoid_attention", "attention_entropy",
    "entropy_regularization_loss", "act_calibration", "flow_attention", "flow_attention_causal",
    "FLOW_VARIANTS", "masked_softmax_attention", "lucidrains_local_attention", "route_topw",
    "gather_clusters", "scatter_mean", "routing_attention", "kmeans_init_means", "check_means",
    "ACT_BETA",
    "ACT_THRES",
]

#: ACT's calibration constants (scripts/calibration.sh, scripts/evaluation.sh).
ACT_BETA = 0.4
ACT_THRES = 0.1


# ------------------------------------------------------------------------------- helpers

def _as4(name: str, x) -> tuple[np.ndarray, bool]:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        return x[None, None], False
    if x.ndim == 4:
        return x, True
    raise FuseMaxError(f"{name} must be 2-D (len, dim) or 4-D (B, H, len, dim), got shape {x.shape}")


def _qkv(q, k, v):
    (q, bq), (k, bk), (v, bv) = _as4("Q", q), _as4("K", k), _as4("V", v)
    if len({bq, bk, bv}) > 1:
        raise FuseMaxError("Q, K and V must all be 2-D or all be 4-D")
    attention_dims(q, k, v)
    for name, a in (("Q", q), ("K", k), ("V", v)):
        if not np.all(np.isfinite(a)):
            raise FuseMaxError(f"{name} holds NaN or Inf")
    return q, k, v, bq


def _out(x: np.ndarray, batched: bool) -> np.ndarray:
    return x if batched else x[0, 0]


def _scale(scale, E: int) -> float:
    s = 1.0 / math.sqrt(E) if scale is None else float(scale)
    if not np.isfinite(s):
        raise FuseMaxError(f"scale must be finite, got {scale}")
    return s


def _softmax_rows(s: np.ndarray) -> np.ndarray:
    """Stable softmax over the last axis; rows that are all -inf give 0."""
    top = s.max(axis=-1, keepdims=True)
    w = np.exp(s - np.where(np.isfinite(top), top, 0.0))
    den = w.sum(axis=-1, keepdims=True)
    return w / np.where(den == 0, 1.0, den)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# ---------------------------------------------------------------- Attention-Sink family

def kv_bias_attention(q, k, v, k_bias, v_bias=None, scale=None, causal: bool = True) -> np.ndarray:
    """``k_bias`` / ``kv_bias`` of lit_gpt/model_kv_bias.py: a zero query, the learned key k*
    and the value v* (zeros for k_bias) are concatenated in front of q, k, v (after RoPE, so the
    bias carries no position); softmax attention over T + 1 tokens with the lower-triangular
    mask, in which every query sees the bias; the first output row is dropped.

    ``k_bias`` is (E,) or (B, H, E) (one per head, ``head_bias``); ``v_bias`` (F,) or (B, H, F).
    """
    q, k, v, batched = _qkv(q, k, v)
    B, H, P, E = q.shape
    M = k.shape[2]
    k1, v1 = prepend_bias(k, v, k_bias, v_bias, name_dims=True)   # k*, v* in front
    s = _scale(scale, E)
    q1 = np.concatenate([np.zeros((B, H, 1, E)), q], axis=2)        # q_bias: zeros
    w = np.einsum("bhpe,bhme->bhpm", q1, k1) * s
    if causal:  # the (T+1) x (T+1) lower triangle: the bias (column 0) is seen by every query
        mask = np.zeros((P + 1, M + 1), bool)
        mask[:, 0] = True
        mask[1:, 1:] = Causal().dense(P, M)  # real keys: aligned at the end when P != M
        w = np.where(mask, w, -np.inf)
    y = _softmax_rows(w) @ v1
    return _out(y[:, :, 1:, :], batched)  # truncate the first token


def softmax1_attention(q, k, v, scale=None, causal: bool = True) -> np.ndarray:
    """softmax-1: ``A[p,m] = e^{s[p,m]} / (1 + sum_m e^{s[p,m]})``, computed directly (with the
    shift max(0, max_m s) for range); hidden keys add nothing."""
    q, k, v, batched = _qkv(q, k, v)
    P, M = q.shape[2], k.shape[2]
    s = np.einsum("bhpe,bhme->bhpm", q, k) * _scale(scale, q.shape[3])
    if causal:
        s = np.where(Causal().dense(P, M), s, -np.inf)
    top = np.maximum(s.max(axis=-1, keepdims=True), 0.0)
    w = np.exp(s - top)
    a = w / (np.exp(-top) + w.sum(axis=-1, keepdims=True))
    return _out(a @ v, batched)


def sigmoid_attention(q, k, v, normalize: bool, scale=None, causal: bool = True) -> np.ndarray:
    """``eager_scaled_dot_product_attention`` with ``sim="sigmoid"``: ``w = sigmoid(q k^T
    scale) * attention_bias`` (the 0/1 lower triangle), ``w / (w.sum(-1) + 1e-8)`` when
    ``normalize`` (``attention_normalize``), then ``w @ v``."""
    q, k, v, batched = _qkv(q, k, v)
    P, M = q.shape[2], k.shape[2]
    w = _sigmoid(np.einsum("bhpe,bhme->bhpm", q, k) * _scale(scale, q.shape[3]))
    if causal:
        w = w * Causal().dense(P, M)
    if normalize:
        w = w / (w.sum(axis=-1, keepdims=True) + 1e-8)
    return _out(w @ v, batched)


# ---------------------------------------------------------------------- entropy

def attention_entropy(q, k, scale=None, causal: bool = True, eps: float = 1e-9) -> np.ndarray:
    """``compute_entropy``: ``H[p] = -nansum_m A[p,m] log(A[p,m] + eps)`` of the softmax
    attention ``A`` (B, H, P), ``eps = 1e-9`` as in the official code. ``eps = 0`` gives the
    exact entropy (masked entries are 0 and nansum drops their 0 log 0)."""
    q, k, _, batched = _qkv(q, k, np.zeros(np.shape(k)[:-1] + (1,)))
    P, M = q.shape[2], k.shape[2]
    s = np.einsum("bhpe,bhme->bhpm", q, k) * _scale(scale, q.shape[3])
    if causal:
        s = np.where(Causal().dense(P, M), s, -np.inf)
    a = _softmax_rows(s)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.nansum(a * np.log(a + eps), axis=-1)
    return h if batched else h[0, 0]


def entropy_regularization_loss(entropies, threshold_weights, context_size: int,
                                loss_coeff: float = 1e-5, tolerance_margin_factor: float = 0.20) -> float:
    """``EntropyRegularization.compute_loss`` from the layers' entropies (one (B, H, P) array
    per layer, as :func:`attention_entropy` gives): per head, the deviation from
    ``w_h log(context_size)`` counts (squared) beyond ``tolerance * log(context_size)``;
    summed over batch and queries, averaged over heads, then layers, times ``loss_coeff``."""
    if not entropies:
        raise FuseMaxError("entropy_regularization_loss needs at least one layer")
    max_entropy = math.log(float(context_size))
    margin = tolerance_margin_factor * max_entropy
    total = 0.0
    for ent in entropies:
        ent = np.asarray(ent, np.float64)
        heads = ent.shape[1]
        if len(threshold_weights) < heads:
            raise FuseMaxError(f"{len(threshold_weights)} threshold weights for {heads} heads")
        layer = 0.0
        for h in range(heads):
            dev = ent[:, h, :] - threshold_weights[h] * max_entropy
            layer += float(np.sum(np.square(np.where(np.abs(dev) > margin, dev, 0.0))))
        total += layer / heads
    return loss_coeff * total / len(entropies)


# ---------------------------------------------------------------------- ACT

def act_calibration(q, k, v, scale=None, beta: float = ACT_BETA, threshold: float = ACT_THRES,
                    fp16: bool = False) -> dict:
    """``atten_process_eval`` on the causal T x T map of every (batch, head) (the official code
    calibrates batch element 0 of the heads listed in ``augment_index.py``; here every head
    given is calibrated), then ``A' @ V``.

    ``fp16=True`` casts the fp32 softmax to fp16 first, as the official dtype path does.
    Returns ``{"out": (B,H,T,F), "sinks": list of index arrays per (b, h), "alpha": (B,H,T)}``.
    """
    q, k, v, batched = _qkv(q, k, v)
    B, H, T, E = q.shape
    if k.shape[2] != T:
        raise FuseMaxError(f"ACT calibrates the T x T self-attention map: P = {T} queries but "
                           f"M = {k.shape[2]} keys")
    s = np.einsum("bhpe,bhme->bhpm", q, k) * _scale(scale, E)
    s = np.where(Causal().dense(T, T), s, -np.inf)
    if fp16:
        attention = _softmax_rows(s.astype(np.float32)).astype(np.float16).astype(np.float64)
    else:
        attention = _softmax_rows(s)
    out = np.empty(q.shape[:3] + (v.shape[3],))
    alphas = np.empty((B, H, T))
    sinks = []
    for b in range(B):
        row = []
        for h in range(H):
            modified_head = attention[b, h].copy()
            # torch.sum(modified_head, dim=0) / torch.arange(shape, 0, -1) > threshod
            alpha = modified_head.sum(axis=0) / np.arange(T, 0, -1)
            indices = np.nonzero(np.where(alpha > threshold, 1, 0))[0]
            indices = indices[1:]
            copied_attention_map = modified_head.copy()
            available_weights = modified_head[:, indices].sum(axis=1, keepdims=True) * (1 - beta)
            modified_head[:, indices] *= beta
            copied_attention_map[1:, indices] *= 0
            ratios = copied_attention_map / np.sum(copied_attention_map, axis=1, keepdims=True)
            modified_head = modified_head + available_weights * ratios
            modified_head[0, 0] = 1
            out[b, h] = modified_head @ v[b, h]
            alphas[b, h] = alpha
            row.append(indices)
        sinks.append(row)
    return {"out": _out(out, batched), "sinks": sinks if batched else sinks[0][0],
            "alpha": alphas if batched else alphas[0, 0]}


# ---------------------------------------------------------------------- Flowformer

def _fv(file: str, causal, phi: str, clamp, cv_eps: bool = False) -> dict:
    return {"file": file, "causal": causal, "phi": phi, "clamp": clamp, "cv_eps": cv_eps}


#: The per-task variants of Flow-Attention in thuml/Flowformer: which file, causal or not, the
#: feature map, the clamp bound of the conserved source (None: none) and the extra 1e-6 the CV
#: model adds inside both reciprocals and to both conserved terms.
FLOW_VARIANTS: dict[str, dict] = {
    "core": _fv("Flow_Attention.py", None, "sigmoid", 1.0),
    "nlp": _fv("Flowformer_NLP/flow_attention.py", True, "sigmoid", 5.0),
    "rl": _fv("Flowformer_RL/decision_transformer/models/flowformer_attention.py", True,
              "sigmoid", 10.0),
    "cv": _fv("Flowformer_CV/flowformer.py", False, "sigmoid", 1.0, cv_eps=True),
    "timeseries": _fv("Flowformer_TimeSeries/models/Flow_Attention.py", False, "sigmoid", None),
    "lra": _fv("Flowformer_LRA/lra_benchmarks/models/flowformer/flow_attention.py", False,
               "relu", None),
}


def _flow_variant(variant: str, causal: bool) -> dict:
    if variant not in FLOW_VARIANTS:
        raise FuseMaxError(f"unknown Flowformer variant {variant!r}; known: {', '.join(FLOW_VARIANTS)}")
    spec = FLOW_VARIANTS[variant]
    if spec["causal"] is not None and spec["causal"] != causal:
        kind = "causal" if spec["causal"] else "non-causal"
        raise FuseMaxError(f"Flowformer variant {variant!r} ({spec['file']}) is {kind} only")
    return spec


def _phi(x, kind: str):
    if kind == "sigmoid":
        return _sigmoid(x)
    return np.maximum(x, 0.0) + 1e-6  # LRA: relu(x) + 1e-6


def flow_attention(q, k, v, variant: str = "core", eps: float = 1e-6) -> np.ndarray:
    """``Flow_Attention.forward`` after the projections (q, k, v already split into heads):
    steps (1)-(4) of the official code, for the non-causal ``variant`` (:data:`FLOW_VARIANTS`).
    P and M may differ."""
    spec = _flow_variant(variant, causal=False)
    queries, keys, values, batched = _qkv(q, k, v)
    queries, keys = _phi(queries, spec["phi"]), _phi(keys, spec["phi"])
    extra = 1e-6 if spec["cv_eps"] else 0.0
    L, S = queries.shape[2], keys.shape[2]
    # (1) incoming and outgoing flow
    sink_incoming = 1.0 / (np.einsum("nhld,nhd->nhl", queries + eps, keys.sum(axis=2) + eps) + extra)
    source_outgoing = 1.0 / (np.einsum("nhld,nhd->nhl", keys + eps, queries.sum(axis=2) + eps) + extra)
    # (2) conservation refine for source and sink
    conserved_sink = np.einsum("nhld,nhd->nhl", queries + eps,
                               (keys * source_outgoing[:, :, :, None]).sum(axis=2) + eps) + extra
    conserved_source = np.einsum("nhld,nhd->nhl", keys + eps,
                                 (queries * sink_incoming[:, :, :, None]).sum(axis=2) + eps) + extra
    if spec["clamp"] is not None:
        conserved_source = np.clip(conserved_source, -spec["clamp"], spec["clamp"])
    # (3) competition and allocation
    sink_allocation = _sigmoid(conserved_sink * (float(L) / float(S)))
    e = np.exp(conserved_source - conserved_source.max(axis=-1, keepdims=True))
    source_competition = e / e.sum(axis=-1, keepdims=True) * float(S)
    # (4) dot product
    kv = np.einsum("nhld,nhlm->nhdm", keys, values * source_competition[:, :, :, None])
    x = np.einsum("nhld,nhdm->nhlm", queries * sink_incoming[:, :, :, None], kv)
    return _out(x * sink_allocation[:, :, :, None], batched)


def flow_attention_causal(q, k, v, variant: str = "core", eps: float = 1e-6) -> np.ndarray:
    """``Flow_Attention_Causal.forward`` after the projections: every sum over the sequence is a
    ``cumsum``, ``normal = arange(N) + 1``; ``variant`` picks the clamp (core 1, nlp 5, rl 10).
    Self-attention: P = M."""
    spec = _flow_variant(variant, causal=True)
    queries, keys, values, batched = _qkv(q, k, v)
    if queries.shape[2] != keys.shape[2]:
        raise FuseMaxError(f"causal Flow-Attention needs P = M (one sequence), got P = "
                           f"{queries.shape[2]}, M = {keys.shape[2]}")
    queries, keys = _phi(queries, spec["phi"]), _phi(keys, spec["phi"])
    # (1) incoming and outgoing flow
    sink_incoming = 1.0 / np.einsum("nhld,nhld->nhl", queries + eps, keys.cumsum(axis=2) + eps)
    source_outgoing = 1.0 / np.einsum("nhld,nhld->nhl", keys + eps, queries.cumsum(axis=2) + eps)
    normal = (np.arange(queries.shape[2]) + 1.0)[None, None, :]
    sink_incoming_keep = sink_incoming  # = sink_incoming * normal / normal in the core file
    sink_incoming = sink_incoming * normal
    source_outgoing = source_outgoing * normal
    # (2) conservation refine
    conserved_sink = np.einsum("nhld,nhld->nhl", queries + eps,
                               (keys * source_outgoing[:, :, :, None]).cumsum(axis=2) + eps) / normal
    conserved_source = np.einsum("nhld,nhld->nhl", keys + eps,
                                 (queries * sink_incoming[:, :, :, None]).cumsum(axis=2) + eps) / normal
    conserved_source = np.clip(conserved_source, -spec["clamp"], spec["clamp"])
    # (3) competition and allocation
    sink_allocation = _sigmoid(conserved_sink)
    conserved_source = np.exp(conserved_source)
    source_competition = conserved_source / conserved_source.cumsum(axis=-1) * normal
    # (4) causal dot product: cumsum over the sequence of the k (x) v outer products
    kv = np.cumsum(np.einsum("nhld,nhlm->nhldm", keys, values * source_competition[:, :, :, None]),
                   axis=2)
    x = np.einsum("nhld,nhldm->nhlm", queries * sink_incoming_keep[:, :, :, None], kv)
    return _out(x * sink_allocation[:, :, :, None], batched)


# ---------------------------------------------------------------------- local attention

def masked_softmax_attention(q, k, v, pattern: Pattern | None = None, scale=None) -> np.ndarray:
    """Dense ``softmax(scale q k^T) v`` with the keys ``pattern`` hides at -inf (rows that see
    nothing give 0). The reference for local and routed attention on the hardware layout."""
    q, k, v, batched = _qkv(q, k, v)
    mask = None if pattern is None else pattern.dense(q.shape[2], k.shape[2])
    return _out(reference_attention(q, k, v, _scale(scale, q.shape[3]), mask), batched)


def lucidrains_local_attention(q, k, v, window_size: int, causal: bool = True,
                               look_backward: int = 1, look_forward: int | None = None,
                               exact_windowsize: bool = False, scale=None) -> np.ndarray:
    """``LocalAttention.forward`` (no rotary embedding, no shared_qk, no masks, no dropout):
    bucket into windows, ``look_around`` with pad value -1, the causal / exact-window / padding
    masks at ``-finfo.max``, softmax, merge the windows. The sequence must be a multiple of
    ``window_size`` (the official assertion; ``autopad`` is not modelled)."""
    q, k, v, batched = _qkv(q, k, v)
    b, h, n, dim_head = q.shape
    if k.shape[2] != n:
        raise FuseMaxError(f"local attention is self-attention: P = {n}, M = {k.shape[2]}")
    look_forward = (0 if causal else 1) if look_forward is None else look_forward
    if causal and look_forward > 0:
        raise FuseMaxError("you cannot look forward if causal")
    if n % window_size:
        raise FuseMaxError(f"sequence length {n} must be divisible by window size {window_size} "
                           f"for local attention")
    scale = dim_head ** -0.5 if scale is None else scale
    windows = n // window_size
    pad_value = -1
    b_t = np.arange(n).reshape(1, windows, window_size)

    def look_around(x, pad):
        # pad `backward` windows before and `forward` after, then concatenate the neighbours
        shape = list(x.shape)
        shape[1] = look_backward + windows + look_forward
        padded = np.full(shape, pad, dtype=x.dtype)
        padded[:, look_backward:look_backward + windows] = x
        parts = [padded[:, i:i + windows] for i in range(look_backward + look_forward + 1)]
        return np.concatenate(parts, axis=2)

    bq = q.reshape(b * h, windows, window_size, dim_head) * scale
    bk = look_around(k.reshape(b * h, windows, window_size, dim_head), 0.0)
    bv = look_around(v.reshape(b * h, windows, window_size, v.shape[3]), 0.0)
    bq_k = look_around(b_t[..., None], pad_value)[..., 0]  # (1, windows, j)
    bq_t = b_t[..., :, None]
    bq_k = bq_k[..., None, :]
    pad_mask = bq_k == pad_value
    sim = np.einsum("bwie,bwje->bwij", bq, bk)
    mask_value = -np.finfo(np.float64).max
    if causal:
        causal_mask = bq_t < bq_k
        if exact_windowsize:
            causal_mask = causal_mask | (bq_t > (bq_k + window_size * look_backward))
        sim = np.where(causal_mask, mask_value, sim)
    if not causal and exact_windowsize:
        window_mask = (((bq_k - window_size * look_forward) > bq_t)
                       | (bq_t > (bq_k + window_size * look_backward)) | pad_mask)
        sim = np.where(window_mask, mask_value, sim)
    else:
        sim = np.where(pad_mask, mask_value, sim)
    sim = sim - sim.max(axis=-1, keepdims=True)
    attn = np.exp(sim)
    attn = attn / attn.sum(axis=-1, keepdims=True)
    out = np.einsum("bwij,bwje->bwie", attn, bv).reshape(b, h, n, v.shape[3])
    return _out(out, batched)


# ---------------------------------------------------------------------- routing

def _l2_normalize(x):
    """``F.normalize(x, 2, dim=-1)`` (eps 1e-12)."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _topk_indices(d: np.ndarray, w: int) -> np.ndarray:
    """Indices of the ``w`` largest values along axis -2 (ties: lower index first), moved to
    (..., clusters, w): ``dists.topk(k=w, dim=-2)`` then ``transpose(-2, -1)``."""
    order = np.argsort(-d, axis=-2, kind="stable")[..., :w, :]
    return np.swapaxes(order, -2, -1)


def check_means(means, H: int, E: int, clusters: int | None = None) -> np.ndarray:
    """The routing centroids ``means`` as float64, checked: (C, E), shared by the heads, or
    (H, C, E), with C = ``clusters`` when given. Returned as given (not broadcast to H)."""
    mu = np.asarray(means, np.float64)
    if mu.ndim not in (2, 3) or mu.shape[-1] != E or (mu.ndim == 3 and mu.shape[0] != H) \
            or (clusters is not None and mu.shape[-2] != clusters):
        c = "C" if clusters is None else clusters
        raise FuseMaxError(f"means must be (C, E) = ({c}, {E}) or (H, C, E) = ({H}, {c}, {E}), "
                           f"got {mu.shape}")
    return mu


def route_topw(q, k, means, window: int) -> tuple[np.ndarray, np.ndarray]:
    """The host's routing step (lucidrains ``KmeansAttention``, ``shared_qk=False``): L2-normalise
    the concatenation [q; k], score it against the centroids ``means`` (H, C, E) or (C, E)
    (``x_hat . mu``), and take each cluster's ``window`` best queries and ``window`` best keys.
    Returns index arrays (B, H, C, window) for queries and keys (not sorted by position)."""
    q4, bq = _as4("Q", q)
    k4, _ = _as4("K", k)
    B, H, T, E = q4.shape
    mu = check_means(means, H, E)
    mu = np.broadcast_to(mu, (H,) + mu.shape[-2:])
    window = int(window)
    if not 1 <= window <= min(T, k4.shape[2]):
        raise FuseMaxError(f"window {window} must be in 1..min(P, M) = {min(T, k4.shape[2])}")
    x = _l2_normalize(np.concatenate([q4, k4], axis=2))
    dists = np.einsum("bhld,hcd->bhlc", x, mu)
    iq = _topk_indices(dists[:, :, :T], window)
    ik = _topk_indices(dists[:, :, T:], window)
    return (iq, ik) if bq else (iq[0, 0], ik[0, 0])


def kmeans_init_means(q, k, clusters: int, seed: int = 0, iters: int = 10) -> np.ndarray:
    """Centroids (H, C, E) as routing_transformer.py's ``Kmeans.init`` makes them from the first
    batch it sees (``KMEAN_INIT_ITERS`` = 10): x = [q; k] along the tokens (not normalised),
    ``clusters`` tokens of each head picked by a random permutation (numpy, ``seed``; torch's
    ``randperm`` draws other tokens), then ``iters`` rounds of ``kmeans_iter``: each token to
    its most similar centroid (``x . mu``), a centroid = the L2-normalised sum of its tokens
    over the batch, kept as it was when no token chose it."""
    q4, _ = _as4("Q", q)
    k4, _ = _as4("K", k)
    B, H, _, E = q4.shape
    if k4.shape[:2] != (B, H) or k4.shape[3] != E:
        raise FuseMaxError(f"Q {q4.shape} and K {k4.shape} disagree on B, H or E")
    clusters = int(clusters)
    x = np.concatenate([q4, k4], axis=2)                       # (B, H, L, E)
    L = x.shape[2]
    if not 1 <= clusters <= B * L:
        raise FuseMaxError(f"clusters must be in 1..{B * L} (the tokens of [Q; K]), got {clusters}")
    samples = np.swapaxes(x, 0, 1).reshape(H, B * L, E)        # x.transpose(0, 1).view(h, -1, d)
    means = samples[:, np.random.default_rng(seed).permutation(B * L)[:clusters]]
    for _ in range(int(iters)):                                # kmeans_iter(x, means)
        buckets = np.einsum("bhld,hcd->bhlc", x, means).argmax(-1)
        onehot = buckets[..., None] == np.arange(clusters)     # (B, H, L, C)
        bins = onehot.sum(axis=(0, 2))                         # (H, C)
        sums = np.einsum("bhlc,bhld->hcd", onehot.astype(np.float64), x)
        new = _l2_normalize(sums)
        means = np.where((bins == 0)[..., None], means, new)
    return means


def gather_clusters(x, index) -> np.ndarray:
    """Rows of ``x`` (B, H, N, D) picked by ``index`` (B, H, C, w): (B, H, C, w, D)."""
    x4, batched = _as4("x", x)
    idx = np.asarray(index)
    if not batched:
        idx = idx[None, None]
    if idx.ndim != 4 or idx.shape[:2] != x4.shape[:2]:
        raise FuseMaxError(f"index must be (B, H, C, w) matching x {x4.shape}, got {np.shape(index)}")
    if idx.size and (idx.min() < 0 or idx.max() >= x4.shape[2]):
        raise FuseMaxError(f"index out of range 0..{x4.shape[2] - 1}")
    B, H, C, w = idx.shape
    flat = np.take_along_axis(x4, idx.reshape(B, H, C * w)[..., None], axis=2)
    out = flat.reshape(B, H, C, w, x4.shape[3])
    return out if batched else out[0, 0]


def scatter_mean(values, index, n: int, delta: float = 1e-5) -> np.ndarray:
    """``scatter_mean`` of routing_transformer.py: sum each gathered row (B, H, C, w, F) into
    its token (``index`` (B, H, C, w)) and divide by the token's number of copies + ``delta``
    (1e-5 lucidrains, 1e-2 Google); tokens no cluster took get 0."""
    vals = np.asarray(values, np.float64)
    idx = np.asarray(index)
    batched = idx.ndim == 4
    if not batched:
        vals, idx = vals[None, None], idx[None, None]
    B, H, C, w = idx.shape
    F = vals.shape[-1]
    numer = np.zeros((B, H, n, F))
    denom = np.zeros((B, H, n, 1))
    for b in range(B):
        for h in range(H):
            flat = idx[b, h].reshape(-1)
            np.add.at(numer[b, h], flat, vals[b, h].reshape(C * w, F))
            np.add.at(denom[b, h], flat, 1.0)
    out = numer / (denom + delta)
    return out if batched else out[0, 0]


def routing_attention(q, k, v, means, window: int, scale=None) -> np.ndarray:
    """``KmeansAttention.forward`` at inference (non-causal, ``shared_qk=False``, no memory
    key/values, no masks, centroids given): route [q; k] by ``dists = normalize(x) . means``,
    ``distribution`` = top-``window`` tokens per cluster, gather, ``dots = q k^T d^-0.5``,
    softmax, ``bo = dots v``, ``scatter_mean`` with eps 1e-5."""
    q4, k4, v4, batched = _qkv(q, k, v)
    b, h, t, d = q4.shape
    mu = check_means(means, h, d)
    mu = np.broadcast_to(mu, (h,) + mu.shape[-2:])
    nc = mu.shape[1]
    wsz = min(int(window), t)
    kv_wsz = min(int(window), k4.shape[2])
    x = np.concatenate([q4, k4], axis=2)
    x = x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)  # F.normalize
    dists = np.einsum("bhld,hcd->bhlc", x, mu)                           # similarity
    q_dists, k_dists = dists[:, :, :t], dists[:, :, t:]                  # split_at_index

    def distribution(dd, wz):                                            # topk over tokens
        top = np.argsort(-dd, axis=-2, kind="stable")[..., :wz, :]
        return np.swapaxes(top, -2, -1).reshape(b, h, -1)

    indices, kv_indices = distribution(q_dists, wsz), distribution(k_dists, kv_wsz)
    qg = np.take_along_axis(q4, indices[..., None], axis=2).reshape(b, h, nc, -1, d)
    kg = np.take_along_axis(k4, kv_indices[..., None], axis=2).reshape(b, h, nc, -1, d)
    vg = np.take_along_axis(v4, kv_indices[..., None], axis=2).reshape(b, h, nc, -1, v4.shape[3])
    dots = np.einsum("bhnid,bhnjd->bhnij", qg, kg) * (d ** -0.5 if scale is None else scale)
    dots = _softmax_rows(dots)
    bo = np.einsum("bhcij,bhcjd->bhcid", dots, vg)
    so = bo.reshape(b, h, -1, bo.shape[-1])
    numer = np.zeros((b, h, t, v4.shape[3]))
    denom = np.zeros((b, h, t, 1))
    for bb in range(b):
        for hh in range(h):
            np.add.at(numer[bb, hh], indices[bb, hh], so[bb, hh])
            np.add.at(denom[bb, hh], indices[bb, hh], 1.0)
    return _out(numer / (denom + 1e-5), batched)
