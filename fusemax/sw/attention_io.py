"""Attention inputs and outputs in the machine-learning layout, validated.

Files are ``.npz`` archives holding ``Q`` (B,H,P,E), ``K`` (B,H,M,E), ``V`` (B,H,M,F) and, for
results, ``O`` (B,H,P,F). B and H may both be absent (2-D arrays). Everything inside the package
works on 4-D float64 arrays; this module is the one place that converts and checks.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

import numpy as np

from fusemax.errors import FuseMaxError

#: Named dimensions of each attention array, in file order (without the optional B, H).
ATTENTION_LAYOUT: dict[str, tuple[str, ...]] = {"Q": ("P", "E"), "K": ("M", "E"), "V": ("M", "F")}


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` file, with an error naming the file when it cannot."""
    path = Path(path)
    if not path.exists():
        raise FuseMaxError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError) as exc:
        raise FuseMaxError(f"{path}: not a readable .npz archive ({exc})") from exc


def check_array(name: str, array: np.ndarray, dims: tuple[str, ...], *, source: str) -> np.ndarray:
    """Return ``array`` as 4-D float64 (B,H,...) after checking its rank count and values.

    ``dims`` names the trailing dimensions; the array may carry zero or two leading (B, H) ones.
    """
    array = np.asarray(array)
    if array.dtype.kind not in "biuf":
        raise FuseMaxError(f"{source}: array {name} has dtype {array.dtype}; expected numbers")
    full = ("B", "H") + dims
    if array.ndim not in (len(dims), len(full)):
        raise FuseMaxError(
            f"{source}: array {name} has {array.ndim} dimensions {array.shape}; expected "
            f"{len(dims)} ({','.join(dims)}) or {len(full)} ({','.join(full)})"
        )
    if 0 in array.shape:
        axis = array.shape.index(0)
        dim = (full if array.ndim == len(full) else dims)[axis]
        raise FuseMaxError(f"{source}: array {name} has size 0 in dimension {dim}")
    values = array.astype(np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        kind = "NaN" if np.isnan(values[where]) else "Inf"
        raise FuseMaxError(f"{source}: array {name} holds {kind} at index {list(where)}")
    if values.ndim == len(dims):
        values = values[None, None]
    return values


def bind_dims(arrays: Mapping[str, np.ndarray], layout: Mapping[str, tuple[str, ...]], *,
              source: str) -> dict[str, int]:
    """Check that every named dimension has one size across ``arrays`` (4-D, B,H first).

    Returns the size of each dimension, B and H included. The first array that disagrees is
    named together with the one it disagrees with.
    """
    sizes: dict[str, tuple[int, str]] = {}
    for name, array in arrays.items():
        for dim, size in zip(("B", "H") + tuple(layout[name]), array.shape):
            if dim in sizes and sizes[dim][0] != size:
                first_size, first = sizes[dim]
                raise FuseMaxError(
                    f"{source}: dimension {dim} is {size} in {name} but {first_size} in {first}"
                )
            sizes.setdefault(dim, (size, name))
    return {dim: size for dim, (size, _) in sizes.items()}


def load_attention_inputs(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Load ``Q``, ``K``, ``V`` from ``path`` as 4-D float64 arrays.

    Returns ``(q, k, v, had_batch)`` where ``had_batch`` says whether the file carried B and H
    (so outputs can be written back in the same form). Missing arrays, wrong dimension counts,
    disagreeing sizes (E of Q vs K, M of K vs V, B/H) and NaN/Inf are refused by name.
    """
    source = str(path)
    data = load_npz(path)
    missing = [name for name in ATTENTION_LAYOUT if name not in data]
    if missing:
        raise FuseMaxError(
            f"{source}: missing array(s) {', '.join(missing)}; an attention input holds "
            + ", ".join(f"{n} ({','.join(('B', 'H') + d)})" for n, d in ATTENTION_LAYOUT.items())
        )
    batched = {name: data[name].ndim == len(dims) + 2 for name, dims in ATTENTION_LAYOUT.items()}
    arrays = {name: check_array(name, data[name], dims, source=source)
              for name, dims in ATTENTION_LAYOUT.items()}
    if len(set(batched.values())) > 1:
        with_b = [n for n, b in batched.items() if b]
        without = [n for n, b in batched.items() if not b]
        raise FuseMaxError(
            f"{source}: {', '.join(with_b)} carry B,H dimensions but {', '.join(without)} do not"
        )
    bind_dims(arrays, ATTENTION_LAYOUT, source=source)
    return arrays["Q"], arrays["K"], arrays["V"], batched["Q"]


def save_attention_output(path: str | Path, o: np.ndarray, had_batch: bool,
                          extra: Mapping[str, np.ndarray] | None = None) -> None:
    """Write ``O`` (4-D, B,H,P,F) to ``path``, dropping B,H when the inputs had none.

    ``extra`` arrays (intermediates, raw integers) are stored beside ``O`` under their names.
    """
    o = np.asarray(o)
    if not had_batch:
        o = o[0, 0]
    arrays = {"O": o}
    for name, value in (extra or {}).items():
        if name == "O":
            raise FuseMaxError("extra output arrays may not be named O")
        arrays[name] = np.asarray(value)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)


def reference_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float | None = None,
                        mask=None) -> np.ndarray:
    """Direct softmax(scale·QKᵀ)V in float64, numerically stable: the independent reference.

    ``q`` (B,H,P,E), ``k`` (B,H,M,E), ``v`` (B,H,M,F). ``scale`` defaults to 1/√E. ``mask``
    marks the keys each query may see: a bool array broadcastable to (P, M) (or B,H,P,M), or a
    function ``mask(p_indices, m_indices) -> bool (P, M)`` such as
    :func:`fusemax.sw.golden.causal_mask`. A query that sees no key gets 0.
    """
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    if scale is None:
        scale = default_scale(q.shape[-1])
    s = scale * np.einsum("bhpe,bhme->bhpm", q, k)
    if mask is not None:
        if callable(mask):
            mask = mask(np.arange(q.shape[-2]), np.arange(k.shape[-2]))
        s = np.where(np.asarray(mask, bool), s, -np.inf)
    top = s.max(axis=-1, keepdims=True)
    w = np.exp(s - np.where(np.isfinite(top), top, 0.0))
    den = w.sum(axis=-1, keepdims=True)
    return np.einsum("bhpm,bhmf->bhpf", w, v) / np.where(den == 0, 1.0, den)


def attention_dims(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> tuple[int, ...]:
    """``(B, H, P, E, M, F)`` of 4-D attention arrays, with an error naming what disagrees."""
    for name, a in (("Q", q), ("K", k), ("V", v)):
        if np.ndim(a) != 4:
            raise FuseMaxError(f"{name} must be 4-D (B, H, len, dim), got shape {np.shape(a)}")
    B, H, P, E = q.shape
    if k.shape[:2] != (B, H) or v.shape[:2] != (B, H):
        raise FuseMaxError(f"Q, K, V disagree on (B, H): {q.shape[:2]}, {k.shape[:2]}, {v.shape[:2]}")
    if k.shape[3] != E:
        raise FuseMaxError(f"Q has E = {E} but K has E = {k.shape[3]}")
    if v.shape[2] != k.shape[2]:
        raise FuseMaxError(f"K has M = {k.shape[2]} keys but V has {v.shape[2]}")
    if min(P, k.shape[2], E, v.shape[3]) < 1:
        raise FuseMaxError(f"empty dimension in Q {q.shape}, K {k.shape}, V {v.shape}")
    return B, H, P, E, k.shape[2], v.shape[3]


def bias_vector(name: str, x, B: int, H: int, n: int, dim: str | None = None) -> np.ndarray:
    """A per-head bias vector as (B, H, n) float64: ``x`` is (n,), shared by every (b, h), or
    (B, H, n); FuseMaxError on another shape or NaN/Inf. ``dim`` names the dimension n (e.g.
    ``"E"``) in the shape error."""
    shape = np.shape(x)
    if shape not in ((n,), (B, H, n)):
        want = f"({n},) or ({B}, {H}, {n})" if dim is None else \
            f"({dim},) = ({n},) or (B, H, {dim}) = ({B}, {H}, {n})"
        raise FuseMaxError(f"{name} must have shape {want}, got {shape}")
    x = np.asarray(x, np.float64)
    if not np.all(np.isfinite(x)):
        raise FuseMaxError(f"{name} holds NaN or Inf")
    return np.broadcast_to(x, (B, H, n))


def prepend_bias(k: np.ndarray, v: np.ndarray, k_bias, v_bias=None, *,
                 name_dims: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``k`` (B,H,M,E), ``v`` (B,H,M,F) with the bias key k* and value v* (zeros when
    ``v_bias`` is None) in front as key 0: (B,H,M+1,E), (B,H,M+1,F). The biases are checked by
    :func:`bias_vector` (``name_dims`` names E and F in its shape error)."""
    B, H, _, E = k.shape
    F = v.shape[3]
    kb = bias_vector("k_bias", k_bias, B, H, E, "E" if name_dims else None)
    vb = np.zeros((B, H, F)) if v_bias is None else \
        bias_vector("v_bias", v_bias, B, H, F, "F" if name_dims else None)
    return (np.concatenate([kb[:, :, None, :], k], axis=2),
            np.concatenate([vb[:, :, None, :], v], axis=2))


def default_scale(e: int) -> float:
    """The attention scale 1/√E that is folded into Q unless the user overrides it."""
    return 1.0 / float(np.sqrt(e))


#: The dimensions of an attention workload, in the order ``--shape`` lists them.
SHAPE_DIMS = "BHMPEF"
_SHAPE_ITEM = re.compile(r"\s*([A-Za-z])\s*=\s*(-?[0-9_]+\s*[kKmM]?)\s*\Z")


def parse_length(text: str, what: str = "length") -> int:
    """``"4K"`` -> 4096, ``"1M"`` -> 1048576, ``"300"`` -> 300."""
    m = re.fullmatch(r"\s*(-?[0-9_]+)\s*([kKmM]?)\s*", str(text))
    if not m:
        raise FuseMaxError(f"{what} {text!r} is not a number (optionally with a K or M suffix)")
    n = int(m.group(1)) * {"": 1, "k": 2 ** 10, "m": 2 ** 20}[m.group(2).lower()]
    if n < 1:
        raise FuseMaxError(f"{what} must be positive, got {text!r}")
    return n


def parse_dims(text: str) -> dict[str, int]:
    """``"B=1,H=2,M=4K,P=64,E=64,F=64"`` -> every dimension once (order free; K and M suffixes
    are powers of two). Positivity is left to the dataclass the caller builds."""
    if not isinstance(text, str) or not text.strip():
        raise FuseMaxError("empty --shape; expected B=..,H=..,M=..,P=..,E=..,F=.. "
                           "(e.g. B=1,H=1,M=256,P=64,E=64,F=64)")
    dims: dict[str, int] = {}
    for item in text.split(","):
        m = _SHAPE_ITEM.match(item)
        if not m:
            raise FuseMaxError(f"cannot read {item.strip()!r} in --shape {text!r}: each item is "
                               f"NAME=INTEGER with NAME one of B, H, M, P, E, F")
        name = m.group(1).upper()
        if name not in SHAPE_DIMS:
            raise FuseMaxError(f"unknown dimension {m.group(1)!r} in --shape {text!r}; "
                               f"dimensions: B, H, M, P, E, F")
        if name in dims:
            raise FuseMaxError(f"dimension {name} given twice in --shape {text!r}")
        value = m.group(2).replace(" ", "")
        dims[name] = int(value) if value.isdigit() else parse_length(value, f"shape {name}")
    missing = [d for d in SHAPE_DIMS if d not in dims]
    if missing:
        raise FuseMaxError(f"--shape {text!r} lacks {', '.join(missing)}; give all of "
                           f"B, H, M, P, E, F")
    return dims
