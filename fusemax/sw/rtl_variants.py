"""The attention variants the FuseMax RTL runs: what the host does before and after, and what the
result must equal (docs/variants.md, "On the RTL").

Every variant here runs on the hardware as plain 1-pass attention (``attention-1pass``), or, for
sigmoid attention, as the compiler's own ``sigmoid-*`` cascades (its ``MODE``; a design with
``sigmoid_unit``), or, for attention with its entropy, as the compiler's ``attention-entropy``
(``MODE entropy=1``; a design with ``entropy_unit``), or, for causal Flow-Attention, as the
compiler's ``flowformer-causal`` (the flow engine; a design with ``flow_unit``): the host
changes the inputs, the compiler the tile list and the mask, and the bit-exact model of
:mod:`fusemax.sw.golden_variants` says which integers must come out.

======================  =====================================================================
cascade                 on the RTL
======================  =====================================================================
attention-softmax1      a zero key with a zero value prepended as key 0 (M + 1 keys): its score
                        is exactly 0, the "+1" of softmax-1 (``softmax1_golden(method="prepend")``)
attention-kbias         the bias key k* (value 0) prepended as key 0 (``kv_bias_golden``)
attention-kvbias        k*, v* prepended as key 0
attention-local         only the tiles of the causal sliding window (``tiles_touched``), with
                        ``CAUSAL 1`` and ``WINDOW W`` masking the partial ones (``local_golden``)
attention-routing       the host routes [Q; K] (k-means centroids, top-w tokens per cluster),
                        gathers each cluster's queries and keys into contiguous rows, the RTL runs
                        the diagonal tiles of that layout, the host scatters the rows back
                        (``routing_golden``, then ``scatter_mean``)
sigmoid-norm            nothing on the host: ``MODE sigmoid=1`` (SLN = sigmoid(BQK), no running
                        max, AV = RNV / RD; ``sigmoid_golden(normalize=True)``)
sigmoid-nonorm          ``MODE sigmoid=1 nonorm=1``: AV = RNV rounded to the output format
attention-entropy       nothing on the host: ``MODE entropy=1``; the tiles also accumulate RT =
                        Σ SLN·BQK, each AV also stores H per query as line F of the output block
                        (``entropy_golden``; an extra output, :attr:`VariantRun.extra_outputs`)
flowformer-causal       nothing on the host but the inputs' format (Q, K as x·log2(e) in score
                        codes): ``FLOWC``, ``FLOW`` on the flow engine of a design with
                        ``flow_unit``, token by token (``flowformer_causal_golden`` with the same
                        clamp: 1, 5 or 10, Flowformer's core, NLP and RL bounds); P = M
======================  =====================================================================

Causal alignment: the RTL's ``CAUSAL`` shows query p the keys m <= p + M' - P of its M' keys.
With the bias as key 0 (M' = M + 1), real key j is key j + 1, visible iff j <= p + M - P: the
variant's own rule; the bias is visible to query p iff p >= P - M - 1, i.e. to every query when
P <= M + 1 (longer query sequences are refused: their first queries would lose the bias).

:func:`prepare` does the host's part and returns a :class:`VariantRun` (the arrays to compile,
the pattern, the golden, the float64 reference and the way back; outputs besides O, such as
the entropy H, in :attr:`VariantRun.extra_outputs`); ``fusemax.sim.attention.
simulate(..., cascade=NAME)`` runs it on the RTL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from fusemax.config import FuseMaxConfig
from fusemax.errors import FuseMaxError
from fusemax.sw import golden_variants as G
from fusemax.sw import variants as V
from fusemax.sw.attention_io import attention_dims, prepend_bias
from fusemax.sw.compiler import CASCADE_MODES, FLOW_CASCADES, Program
from fusemax.sw.patterns import Causal, Dense, Pattern, Routing, positive_int, sliding_window

__all__ = ["RTL_VARIANTS", "NOT_ON_RTL", "VariantRun", "ExtraOutput", "prepare", "VARIANT_OPTIONS",
           "FLOW_CLAMPS"]

#: Cascades the RTL runs with the host's help -> how.
RTL_VARIANTS = {
    "attention-softmax1": "a zero key with a zero value prepended as key 0 (M + 1 keys)",
    "attention-kbias": "the bias key k* (value 0) prepended as key 0 (M + 1 keys)",
    "attention-kvbias": "the bias key k* with the value v* prepended as key 0 (M + 1 keys)",
    "attention-local": "only the sliding window's tiles, CAUSAL 1 and WINDOW W",
    "attention-routing": "k-means routing on the host, queries and keys gathered by cluster, "
                         "the block-diagonal tiles, the outputs scattered back",
    "sigmoid-norm": "nothing on the host; MODE sigmoid=1 (a design with sigmoid_unit): sigmoid "
                    "scores, RD and RNV plain sums, AV = RNV / RD",
    "sigmoid-nonorm": "nothing on the host; MODE sigmoid=1 nonorm=1 (a design with "
                      "sigmoid_unit): sigmoid scores, AV = RNV rounded to the output format",
    "attention-entropy": "nothing on the host; MODE entropy=1 (a design with entropy_unit): "
                         "softmax tiles that also accumulate RT = sum of SLN·BQK, and per "
                         "query block the entropy H of its queries stored after the output",
    "flowformer-causal": "nothing on the host (Q, K as x·log2(e) in score codes, no scale); "
                         "FLOWC, FLOW on the flow engine (a design with flow_unit): the "
                         "per-token recurrence, token by token",
}

#: The clamp bounds of causal Flow-Attention with a float64 reference: clamp -> variant (the
#: causal ones of :data:`fusemax.sw.variants.FLOW_VARIANTS`: core 1, NLP 5, RL 10).
FLOW_CLAMPS = {spec["clamp"]: name for name, spec in V.FLOW_VARIANTS.items()
               if spec["causal"] is not False}

#: The built-in variant cascades that do not run on the v1 RTL -> the missing operation or buffer.
NOT_ON_RTL = {
    "act-calibration": "passes 2-3: column sums over all queries into an M-length buffer, the "
                       "per-query LSE kept from pass 1, compare, first-index reduce, a sparse "
                       "gather of the sink columns; multi-pass schedules",
    "flowformer": "multi-pass control on the flow engine (which runs the causal form): its "
                  "sums run over the whole sequence (KS, QS, then KO, QI, then ZC and the E x F "
                  "state) before any output, so it needs FLOW modes that only accumulate, "
                  "per-token reciprocals of global sums (a pass over K and Q each), "
                  "allocation's P/M factor and competition's softmax over M",
}

#: Options of :func:`prepare` and the cascades that use them.
VARIANT_OPTIONS = {
    "k_bias": ("attention-kbias", "attention-kvbias"),
    "v_bias": ("attention-kvbias",),
    "window": ("attention-local",),
    "clusters": ("attention-routing",),
    "cluster_size": ("attention-routing",),
    "means": ("attention-routing",),
    "clamp": ("flowformer-causal",),
}

_PREPEND = ("attention-softmax1", "attention-kbias", "attention-kvbias")
#: The cascades whose MODE sets sigmoid scores.
_SIGMOID = tuple(c for c, m in CASCADE_MODES.items() if m.get("sigmoid"))


@dataclass(frozen=True)
class ExtraOutput:
    """An output the RTL stores besides O (e.g. the entropy H of attention-entropy): how to read
    its codes from the memory the run leaves, where the golden has them, and its float64
    reference."""

    what: str                                          #: e.g. "entropy H per query (nats)"
    array: str                                         #: name of its values (``H``; codes: ``H_codes``)
    decode: Callable[[Program, np.ndarray, int], np.ndarray]  #: (program, dump, base line) -> codes
    golden_key: str                                    #: its codes in ``VariantGolden.extra``
    to_float: Callable[[np.ndarray], np.ndarray]       #: codes -> values
    reference: Callable[[float], np.ndarray]           #: scale -> float64 values


@dataclass
class VariantRun:
    """A variant ready for the RTL: compile ``q``, ``k``, ``v`` as ``compile_cascade`` with
    ``causal`` / ``pattern`` (:func:`fusemax.sw.compiler.compile_attention`), compare the RTL's
    codes with ``golden(config, scale).out_codes`` reshaped by :meth:`golden_codes`, map its
    output back with ``finish`` and measure it against ``reference(scale)``."""

    cascade: str
    how: str
    q: np.ndarray                     #: (B, H, P', E) what the RTL runs (P' = P except routing)
    k: np.ndarray                     #: (B, H, M', E) (M' = M + 1 with a bias key)
    v: np.ndarray                     #: (B, H, M', F)
    causal: bool                      #: the compiler's causal flag (False with a pattern)
    pattern: Pattern | None           #: the tile list and mask (local, routing)
    params: dict                      #: what the host used (JSON-able)
    golden: Callable[[FuseMaxConfig, float], G.VariantGolden]
    reference: Callable[[float], np.ndarray]   #: float64 output of the mechanism (B, H, P, F)
    finish: Callable[[np.ndarray], np.ndarray]  #: RTL-layout floats (B,H,P',F) -> (B, H, P, F)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  #: e.g. routing indices
    compile_cascade: str = "attention-1pass"  #: the cascade the compiler maps
    compile_options: dict = field(default_factory=dict)  #: more compile_attention options (clamp)
    #: outputs besides O: name -> how to decode and check it (attention-entropy: "entropy")
    extra_outputs: dict[str, ExtraOutput] = field(default_factory=dict)

    def golden_codes(self, g: G.VariantGolden) -> np.ndarray:
        """The golden's output codes in the RTL's layout (B, H, P', F)."""
        return np.asarray(g.out_codes).reshape(self.q.shape[:3] + (self.v.shape[3],))


def _unused(cascade: str, given: dict) -> None:
    bad = [name for name, value in given.items()
           if value is not None and cascade not in VARIANT_OPTIONS[name]]
    if bad:
        uses = "; ".join(f"{n} is for {', '.join(VARIANT_OPTIONS[n])}" for n in bad)
        raise FuseMaxError(f"cascade {cascade} takes no {', '.join(bad)} ({uses})")


def prepare(cascade: str, q, k, v, *, causal: bool = False, rows: int, cols: int,
            k_bias=None, v_bias=None, window: int | None = None, clusters: int | None = None,
            cluster_size: int | None = None, means=None, seed: int = 0,
            clamp: float | None = None) -> VariantRun:
    """The host's part of running ``cascade`` (a key of :data:`RTL_VARIANTS`) on an array of
    ``rows`` keys x ``cols`` queries, for ``q`` (B,H,P,E), ``k`` (B,H,M,E), ``v`` (B,H,M,F).

    * softmax1 / kbias / kvbias: ``k_bias`` (E,) or (B,H,E), ``v_bias`` (F,) or (B,H,F);
      ``causal`` as for plain attention (the built-in cascades are the causal form); causal
      needs P <= M + 1.
    * local: ``window`` W >= 1 (query p sees keys p + M - P - W < m <= p + M - P; causal by
      definition).
    * sigmoid-norm / sigmoid-nonorm: nothing to prepare (``causal`` as for plain attention);
      the compiler emits MODE, which needs ``config.sigmoid_unit``.
    * attention-entropy: nothing to prepare (``causal`` as for plain attention); the compiler
      emits ``MODE entropy=1``, which needs ``config.entropy_unit``; besides O the RTL stores
      the entropy H of every query (``extra_outputs["entropy"]``, against the exact entropy
      :func:`~fusemax.sw.variants.attention_entropy` with eps = 0).
    * routing: ``clusters`` C, ``cluster_size`` w (default min(P, M) // C; a multiple of rows
      and cols, so no tile straddles two clusters), ``means`` (C, E) or (H, C, E) centroids
      (default :func:`~fusemax.sw.variants.kmeans_init_means` with ``seed``; C defaults to
      their count when given); non-causal.
    * flowformer-causal: ``clamp`` the bound of the conserved source, 1 (default; the core
      Flow_Attention), 5 (NLP) or 10 (RL), the bounds with a float64 reference; P = M; causal
      by construction (``causal`` is not used); compiled as ``flowformer-causal`` (FLOWC, FLOW),
      which needs ``config.flow_unit``.
    """
    if cascade not in RTL_VARIANTS:
        raise FuseMaxError(f"cascade {cascade!r} has no RTL variant; those with one: "
                           f"{', '.join(RTL_VARIANTS)}")
    _unused(cascade, {"k_bias": k_bias, "v_bias": v_bias, "window": window, "clusters": clusters,
                      "cluster_size": cluster_size, "means": means, "clamp": clamp})
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    B, H, P, E, M, F = attention_dims(q, k, v)
    for name, a in (("Q", q), ("K", k), ("V", v)):
        if not np.all(np.isfinite(a)):
            raise FuseMaxError(f"{name} holds NaN or Inf")
    how = RTL_VARIANTS[cascade]
    if cascade in _PREPEND:
        return _prepend(cascade, how, q, k, v, bool(causal), k_bias, v_bias)
    if cascade == "attention-local":
        return _local(how, q, k, v, window)
    if cascade in _SIGMOID:
        return _sigmoid(cascade, how, q, k, v, bool(causal))
    if cascade == "attention-entropy":
        return _entropy(cascade, how, q, k, v, bool(causal))
    if cascade in FLOW_CASCADES:
        return _flow(cascade, how, q, k, v, clamp)
    return _routing(how, q, k, v, bool(causal), rows, cols, clusters, cluster_size, means, seed)


def _prepend(cascade, how, q, k, v, causal, k_bias, v_bias) -> VariantRun:
    B, H, P, E, M, F = attention_dims(q, k, v)
    if cascade != "attention-softmax1" and k_bias is None:
        raise FuseMaxError(f"{cascade} needs the bias key k_bias, shape (E,) = ({E},) or "
                           f"(B, H, E) = ({B}, {H}, {E})")
    if cascade == "attention-kvbias" and v_bias is None:
        raise FuseMaxError(f"{cascade} needs the bias value v_bias, shape (F,) = ({F},) or "
                           f"(B, H, F) = ({B}, {H}, {F})")
    if causal and P > M + 1:
        raise FuseMaxError(
            f"causal {cascade} on the RTL needs P <= M + 1 (P = {P}, M = {M}): the bias is key 0 "
            f"of M + 1 keys, and the end-aligned CAUSAL hides it from queries p < P - M - 1")
    k1, v1 = prepend_bias(k, v, np.zeros(E) if k_bias is None else k_bias, v_bias)
    params = {"causal": causal, "bias_key": cascade != "attention-softmax1",
              "bias_value": cascade == "attention-kvbias"}

    if cascade == "attention-softmax1":
        def golden(config, scale):
            return G.softmax1_golden(q, k, v, config, scale, causal, method="prepend")

        def reference(scale):
            return V.softmax1_attention(q, k, v, scale, causal)
    else:
        vb_arg = v_bias if cascade == "attention-kvbias" else None

        def golden(config, scale):
            return G.kv_bias_golden(q, k, v, k_bias, vb_arg, config, scale, causal, method="prepend")

        def reference(scale):
            return V.kv_bias_attention(q, k, v, k_bias, vb_arg, scale, causal)

    return VariantRun(cascade, how, q, k1, v1, causal, None, params, golden, reference,
                      lambda out: out)


def _sigmoid(cascade, how, q, k, v, causal) -> VariantRun:
    normalize = not CASCADE_MODES[cascade]["nonorm"]

    def golden(config, scale):
        return G.sigmoid_golden(q, k, v, config, normalize, scale, causal)

    def reference(scale):
        return V.sigmoid_attention(q, k, v, normalize, scale, causal)

    return VariantRun(cascade, how, q, k, v, causal, None, {"causal": causal, "normalize": normalize},
                      golden, reference, lambda out: out, compile_cascade=cascade)


def _entropy(cascade, how, q, k, v, causal) -> VariantRun:
    pattern = Causal() if causal else Dense()

    def golden(config, scale):
        return G.entropy_golden(q, k, v, config, scale, causal)

    def reference(scale):
        return V.masked_softmax_attention(q, k, v, pattern, scale)

    entropy = ExtraOutput(
        "entropy H per query (nats, s16.11)", "H",
        lambda program, dump, base: program.decode_entropy(dump, base), "H_codes",
        G.ENTROPY_FORMAT.to_float,
        lambda scale: V.attention_entropy(q, k, scale, causal, eps=0.0))
    return VariantRun(cascade, how, q, k, v, causal, None, {"causal": causal}, golden, reference,
                      lambda out: out, compile_cascade=cascade, extra_outputs={"entropy": entropy})


def _flow(cascade, how, q, k, v, clamp) -> VariantRun:
    B, H, P, E, M, F = attention_dims(q, k, v)
    if P != M:
        raise FuseMaxError(f"{cascade} needs P = M (one sequence of N tokens), got P = {P}, M = {M}")
    c = 1.0 if clamp is None else clamp
    try:
        c = float(c)
    except (TypeError, ValueError):
        c = None
    if c not in FLOW_CLAMPS:
        raise FuseMaxError(
            f"{cascade}: clamp must be one of Flowformer's bounds "
            + ", ".join(f"{b:g} ({n})" for b, n in FLOW_CLAMPS.items())
            + f" (those have a float64 reference), got {clamp!r}")
    variant = FLOW_CLAMPS[c]

    def golden(config, scale):
        return G.flowformer_causal_golden(q, k, v, config, clamp=c)

    def reference(scale):
        return V.flow_attention_causal(q, k, v, variant=variant)

    return VariantRun(cascade, how, q, k, v, True, None, {"clamp": c, "flowformer_variant": variant},
                      golden, reference, lambda out: out, compile_cascade=cascade,
                      compile_options={"clamp": c})


def _local(how, q, k, v, window) -> VariantRun:
    if window is None:
        raise FuseMaxError("attention-local needs the window W (query p sees the W keys "
                           "p + M - P - W < m <= p + M - P)")
    window = positive_int("window", window)
    pattern = sliding_window(window)

    def golden(config, scale):
        return G.local_golden(q, k, v, config, scale=scale, pattern=pattern)

    def reference(scale):
        return V.masked_softmax_attention(q, k, v, pattern, scale)

    return VariantRun("attention-local", how, q, k, v, False, pattern, {"window": window},
                      golden, reference, lambda out: out)


def _routing(how, q, k, v, causal, rows, cols, clusters, cluster_size, means, seed) -> VariantRun:
    B, H, P, E, M, F = attention_dims(q, k, v)
    if causal:
        raise FuseMaxError("attention-routing runs the non-causal KmeansAttention (the reference "
                           "routing_attention); causal routing needs clusters sorted by position")
    if clusters is None and means is not None and np.ndim(means) in (2, 3):
        clusters = int(np.shape(means)[-2])  # the centroids say how many
    if clusters is None:
        raise FuseMaxError("attention-routing needs the number of clusters C (or the centroids means)")
    clusters = positive_int("clusters", clusters)
    if means is not None:
        mu = V.check_means(means, H, E, clusters)
        if not np.all(np.isfinite(mu)):
            raise FuseMaxError("means holds NaN or Inf")
    else:
        mu = V.kmeans_init_means(q, k, clusters, seed=seed)
    w = min(P, M) // clusters if cluster_size is None else positive_int("cluster_size", cluster_size)
    if w < 1:
        raise FuseMaxError(f"{clusters} clusters of min(P, M) // C = 0 tokens: use fewer clusters "
                           f"(P = {P}, M = {M})")
    if w > min(P, M):
        raise FuseMaxError(f"cluster_size w = {w} exceeds min(P, M) = {min(P, M)} (each cluster "
                           f"takes its w best queries and w best keys)")
    if w % rows or w % cols:
        raise FuseMaxError(
            f"cluster_size w = {w} must be a multiple of rows = {rows} and cols = {cols}: a tile "
            f"must not straddle two clusters (the RTL has no block-diagonal mask)"
            + ("" if cluster_size is not None else
               f"; the default is min(P, M) // C = {min(P, M)} // {clusters}"))
    iq, ik = V.route_topw(q, k, mu, w)
    gq, gk, gv = (V.gather_clusters(x, i) for x, i in ((q, iq), (k, ik), (v, ik)))

    def flat(x):
        return x.reshape(B, H, clusters * w, x.shape[-1])

    def golden(config, scale):
        return G.routing_golden(gq, gk, gv, config, scale)

    def reference(scale):
        return V.routing_attention(q, k, v, mu, w, scale)

    def finish(out):
        return V.scatter_mean(np.asarray(out).reshape(B, H, clusters, w, F), iq, P)

    return VariantRun("attention-routing", how, flat(gq), flat(gk), flat(gv), False,
                      Routing.uniform(clusters, w), {"clusters": clusters, "cluster_size": w,
                                                     "means": "given" if means is not None else
                                                     f"k-means init (seed {seed})"},
                      golden, reference, finish, {"index_q": iq, "index_k": ik, "means": mu})
