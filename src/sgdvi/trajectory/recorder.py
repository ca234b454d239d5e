"""Record ``k`` projections of any PyTorch model's weights from the user's own training loop,
and test the recorded trajectory for a probability current (Sec. IV-B, Fig. 3, Remark 17,
Lemma 7 of Chaudhari & Soatto 2018: SGD's steady state has ``j(x) != 0`` in eq. (8)).

The tiny-fc pipeline stores every weight after every epoch and runs
:func:`sgdvi.irreversibility.sgd.analyse_current` on them. For a large model that is
impossible (``n x d`` floats), but the current test only needs the path's coordinates along
``k`` fixed directions plus a few full-space sums for the size of the mean drift.
:class:`TrajectoryRecorder` keeps exactly these, in float64, in a directory that survives a
killed job; :func:`analyse_recording` runs the same analysis on it.

Example (a runnable user loop; ``analyse_recording`` needs a few hundred rows)::

    import torch
    from sgdvi.irreversibility.sgd import Settings
    from sgdvi.models import build_model
    from sgdvi.trajectory.recorder import TrajectoryRecorder, analyse_recording

    torch.manual_seed(0)
    x, y = torch.randn(256, 1, 7, 7), torch.randint(0, 5, (256,))
    model = build_model("tiny-fc")
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    with TrajectoryRecorder(model, "rec", k=10, seed=0, every="epoch", burn_in=50) as rec:
        for epoch in range(rec.n_rows, 450):  # after a kill: rows so far (+ your checkpoint)
            for i in torch.randperm(256).split(32):
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(x[i]), y[i]).backward()
                opt.step()
            rec.on_epoch_end(model)
    summary, projections = analyse_recording("rec", Settings(m=10, n_surrogates=99))
    print(summary["verdict"], summary["drift_relative"])

(A real loop must also checkpoint its own model and optimiser each epoch: the recorder only
appends after its last committed row, it does not roll back. For ``every="step"`` on a large
model, ``track_drift=False`` skips the full-space sums (a few passes over ``d`` floats per
record); the drift sizes are then NaN.)

Directions: seeded random orthonormal ones (:func:`random_directions`, generated in row chunks
and orthonormalised by a thin QR, so ``d = 10^6`` needs ``d x k`` floats, never ``d x d``), or
any ``(d, k)`` array, e.g. the leading eigenvectors of ``D(x)`` (eq. (2)) at the end of burn-in
from :func:`sgdvi.irreversibility.sgd.diffusion_directions` (``kind="diffusion"``).

Files in the recording directory (each row is one :meth:`TrajectoryRecorder.record` call):

- ``recording.json``: the header (``d``, ``k``, ``every``, ``burn_in``, the directions' kind,
  seed and SHA-1, the parameter names and shapes, the projection of the weights the recorder
  was created with), written once, atomically, after the other files exist;
- ``projections.npy``: ``(capacity, k)`` float64 memmap, row ``r`` = weights after record
  ``r`` projected on the directions (``x @ V`` accumulated in float64); rows past the committed
  count are NaN; the capacity doubles (copy + atomic rename) when full;
- ``state.npy``: float64 ``[committed rows, S2 (slot 0), S2 (slot 1)]``;
- ``fullspace.npy`` (unless ``track_drift=False``): ``(7, d)`` float64, ``x_0`` (weights at row
  ``burn_in``) and two slots of ``[u_last, sum u_t, sum t u_t]`` with ``u_t = x_t - x_0``;
  with ``S2 = sum |u_t|^2`` they give the mean drift ``mu`` and the RMS fluctuation of the
  detrended path in all ``d`` coordinates (:func:`drift_summary`);
- ``directions.npy``: the ``(d, k)`` array for given directions (random ones keep the seed).

Crash safety: a record writes the next drift slot, then the row, then the row count, one
8-byte store that commits it. A process killed at any point leaves the committed rows and the
slot they belong to intact (the page cache keeps a killed process's writes); a resumed
recorder overwrites the uncommitted row. :meth:`TrajectoryRecorder.flush` (``msync``) also
protects against power loss.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.lib.format import open_memmap

from sgdvi.infra.atomic import atomic_open, atomic_path
from sgdvi.infra.disk import reserved_memmap
from sgdvi.infra.jobguard import checkpoint_lock
from sgdvi.irreversibility import sgd

FORMAT = "sgdvi-trajectory-recording"
HEADER, ROWS, STATE, FULL, DIRECTIONS = (
    "recording.json",
    "projections.npy",
    "state.npy",
    "fullspace.npy",
    "directions.npy",
)
#: header keys a resumed recorder must match
_RESUME_KEYS = ("d", "k", "every", "burn_in", "kind", "seed", "directions_sha1", "track_drift")


class RecordingMismatch(ValueError):
    """A recorder's model or directions do not fit the recording or each other."""


def random_directions(d: int, k: int, seed: int, chunk: int = 1 << 16) -> np.ndarray:
    """``(d, k)`` float64 orthonormal directions, uniformly random given ``seed``: Gaussian
    rows drawn ``chunk`` at a time (the same numbers for any ``chunk``), then a thin QR with the
    signs fixed (``R``'s diagonal positive), so the result does not depend on LAPACK's sign
    convention. Memory ``2 d k`` floats."""
    if not 1 <= k <= d:
        raise ValueError(f"random directions need 1 <= k <= d, got k = {k}, d = {d}")
    rng = np.random.default_rng(seed)
    a = np.empty((d, k))
    for s in range(0, d, chunk):
        a[s : s + chunk] = rng.standard_normal((min(chunk, d - s), k))
    q, r = np.linalg.qr(a)
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)


def _parameters(model: torch.nn.Module | Iterable[torch.Tensor]) -> list[torch.Tensor]:
    if isinstance(model, torch.nn.Module):
        return list(model.parameters())
    return list(model)


def _layout(model: torch.nn.Module | Iterable[torch.Tensor]) -> list | None:
    """``[[name, shape], ...]`` of a module's parameters (None for a bare parameter list)."""
    if not isinstance(model, torch.nn.Module):
        return None
    return [[n, list(p.shape)] for n, p in model.named_parameters()]


def flat_weights(params: list[torch.Tensor]) -> torch.Tensor:
    """All parameters concatenated in order, float64, on their device (CPU for MPS, which
    has no float64)."""
    dev = params[0].device if params[0].device.type != "mps" else torch.device("cpu")
    with torch.no_grad():
        return torch.cat([p.detach().reshape(-1).to(dev, torch.float64) for p in params])


def _sha1(a: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(a, dtype=np.float64).tobytes()).hexdigest()


class TrajectoryRecorder:
    """Append the projections of a model's weights on ``k`` fixed directions to ``path``.

    ``model``: an ``nn.Module`` (its ``parameters()``, in order) or a list of tensors.
    ``directions``: a ``(d, k)`` array, or None for :func:`random_directions` ``(d, k, seed)``;
    ``kind`` names them (``"random"`` / ``"diffusion"`` for ``D(x)`` eigenvectors / ``"given"``)
    and names projection (a) of :func:`analyse_recording`. ``every`` (``"epoch"`` or
    ``"step"``) says which callback records (:meth:`record` always does) and is the time unit of
    the analysis. The first ``burn_in`` rows are kept but excluded from the full-space drift
    sums and, by default, from the analysis. ``max_rows`` is the initial capacity (it doubles
    when full). An existing recording at ``path`` is resumed when the header matches, else
    :class:`RecordingMismatch`. One recorder per path (``recording.lock``); use it as a context
    manager or call :meth:`close`.
    """

    def __init__(
        self,
        model: torch.nn.Module | Iterable[torch.Tensor],
        path: str | os.PathLike[str],
        directions: np.ndarray | None = None,
        *,
        k: int = 10,
        seed: int = 0,
        kind: str | None = None,
        every: str = "epoch",
        burn_in: int = 0,
        max_rows: int = 1024,
        track_drift: bool = True,
    ) -> None:
        if every not in ("epoch", "step"):
            raise ValueError(f"every must be 'epoch' or 'step', got {every!r}")
        self.path, self._params = Path(path), _parameters(model)
        d = sum(p.numel() for p in self._params)
        V, kind, seed = self._directions(directions, d, k, seed, kind)
        self.header: dict[str, Any] = {
            "format": FORMAT,
            "d": d,
            "k": V.shape[1],
            "every": every,
            "burn_in": int(burn_in),
            "kind": kind,
            "seed": seed,
            "directions_sha1": _sha1(V),
            "track_drift": bool(track_drift),
        }
        self._V, self._V_dev = V, None
        self._locks = ExitStack()
        self.path.mkdir(parents=True, exist_ok=True)
        self._locks.enter_context(checkpoint_lock(self.path / "recording", "trajectory recorder"))
        try:
            if (self.path / HEADER).exists():
                self._open()
            else:
                self._create(model, max_rows)
        except BaseException:
            self._locks.close()
            raise

    @staticmethod
    def _directions(directions, d: int, k: int, seed: int, kind: str | None):
        """``(V, kind, seed)``; a clear error when ``V`` does not fit the model."""
        if directions is None:
            return random_directions(d, k, seed), kind or "random", int(seed)
        V = np.asarray(directions, dtype=np.float64)
        if V.ndim != 2 or V.shape[0] != d:
            raise RecordingMismatch(
                f"the model has d = {d} weights but the directions have shape {V.shape}: pass a "
                f"(d, k) array whose rows follow model.parameters() order, or directions=None "
                "for seeded random ones"
            )
        if not np.isfinite(V).all():
            raise RecordingMismatch("the directions contain NaN or inf")
        return V, kind or "given", None

    @classmethod
    def resume(
        cls, model: torch.nn.Module | Iterable[torch.Tensor], path: str | os.PathLike[str]
    ) -> TrajectoryRecorder:
        """Reopen the recording at ``path`` with its own settings and directions."""
        h = json.loads((Path(path) / HEADER).read_text())
        V = None if h["seed"] is not None else np.load(Path(path) / DIRECTIONS)
        keys = ("k", "seed", "kind", "every", "burn_in", "track_drift")
        return cls(model, path, V, **{key: h[key] for key in keys})

    # ------------------------------------------------------------------ files
    def _create(self, model, max_rows: int) -> None:
        """Write the arrays, then the header last (its presence marks a valid recording)."""
        k, d = self.header["k"], self.header["d"]
        self._rows = reserved_memmap(self.path / ROWS, np.float64, (max(1, max_rows), k))
        self._rows[:] = np.nan
        self._state = open_memmap(self.path / STATE, "w+", np.float64, (3,))
        self._state[:] = 0.0
        self._full = None
        if self.header["track_drift"]:
            self._full = reserved_memmap(self.path / FULL, np.float64, (7, d))
        if self.header["seed"] is None:
            with atomic_path(self.path / DIRECTIONS) as tmp:
                np.save(tmp, self._V)
        self.flush()
        init = self._project(self._check_model(None))[0]
        meta = {
            "parameters": _layout(model),
            "init_projection": init.tolist(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "rows": f"{ROWS}: row r = weights after record r projected on the directions",
        }
        with atomic_open(self.path / HEADER, "w", encoding="utf-8") as fh:
            json.dump(self.header | meta, fh, indent=1)
        self.header |= meta

    def _open(self) -> None:
        """Reopen an existing recording after checking that it is this recorder's."""
        old = json.loads((self.path / HEADER).read_text())
        bad = [k for k in _RESUME_KEYS if old.get(k) != self.header[k]]
        if old.get("format") != FORMAT or bad:
            diff = ", ".join(f"{k}: recorded {old.get(k)!r}, now {self.header[k]!r}" for k in bad)
            raise RecordingMismatch(
                f"{self.path} holds another recording ({diff or 'not a recording header'}): "
                "use another path, TrajectoryRecorder.resume(model, path), or delete it"
            )
        self.header = old
        self._rows = open_memmap(self.path / ROWS, "r+")
        self._state = open_memmap(self.path / STATE, "r+")
        self._full = open_memmap(self.path / FULL, "r+") if old["track_drift"] else None

    def _grow(self) -> None:
        """Double the capacity: copy the committed rows to a new file, rename it over."""
        n, (cap, k) = self.n_rows, self._rows.shape
        with atomic_path(self.path / ROWS) as tmp:
            new = reserved_memmap(tmp, np.float64, (2 * cap, k))
            new[:n], new[n:] = self._rows[:n], np.nan
            new.flush()
            del new
        self._rows = open_memmap(self.path / ROWS, "r+")

    @property
    def n_rows(self) -> int:
        """Committed rows (records so far, over all sessions)."""
        return int(self._state[0])

    def flush(self) -> None:
        """``msync`` the memmaps (a killed process loses nothing without it; power loss may)."""
        for a in (self._rows, self._state, self._full):
            if a is not None:
                a.flush()

    def close(self) -> None:
        """Flush and release the lock (the recording stays resumable)."""
        self.flush()
        self._locks.close()

    def __enter__(self) -> TrajectoryRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ recording
    def _check_model(self, model) -> list[torch.Tensor]:
        params = self._params if model is None else _parameters(model)
        d = sum(p.numel() for p in params)
        if d != self.header["d"]:
            raise RecordingMismatch(
                f"the model has {d} weights but the recording at {self.path} has d = "
                f"{self.header['d']}: record the model the recorder was created for"
            )
        return params

    def _project(self, params: list[torch.Tensor]) -> tuple[np.ndarray, torch.Tensor]:
        x = flat_weights(params)
        if self._V_dev is None or self._V_dev.device != x.device:
            self._V_dev = torch.from_numpy(self._V).to(x.device)
        return (x @ self._V_dev).cpu().numpy(), x

    def record(self, model: torch.nn.Module | Iterable[torch.Tensor] | None = None) -> int:
        """Append the projection of ``model``'s weights (default: the recorder's); return
        the row's index. Non-finite weights raise before anything is written."""
        p, x = self._project(self._check_model(model))
        n = self.n_rows
        t = n - self.header["burn_in"]
        xc = x.cpu().numpy() if self._full is not None and t >= 0 else None
        if not np.isfinite(p).all() or (xc is not None and not np.isfinite(xc).all()):
            raise FloatingPointError(f"non-finite weights at row {n} of {self.path}; not recorded")
        if n >= len(self._rows):
            self._grow()
        if xc is not None:
            self._accumulate(xc, t)
        self._rows[n] = p
        self._commit(n + 1)
        return n

    def on_epoch_end(self, model: torch.nn.Module | None = None, *args: Any, **kw: Any) -> None:
        """Callback: record when ``every == "epoch"``."""
        if self.header["every"] == "epoch":
            self.record(model)

    def on_step_end(self, model: torch.nn.Module | None = None, *args: Any, **kw: Any) -> None:
        """Callback: record when ``every == "step"``."""
        if self.header["every"] == "step":
            self.record(model)

    def _accumulate(self, x: np.ndarray, t: int) -> None:
        """Full-space sums after drift row ``t``, written to the slot not holding the
        committed sums (slot ``t % 2`` holds those of rows ``0..t-1``)."""
        full, new, old = self._full, 1 + 3 * ((t + 1) % 2), 1 + 3 * (t % 2)
        if t == 0:
            full[0] = x
            full[new : new + 3] = 0.0
            self._state[1 + (t + 1) % 2] = 0.0
            return
        u = x - full[0]
        full[new] = u
        np.add(full[old + 1], u, out=full[new + 1])
        np.add(full[old + 2], t * u, out=full[new + 2])
        self._state[1 + (t + 1) % 2] = self._state[1 + t % 2] + float(u @ u)

    def _commit(self, n: int) -> None:
        self._state[0] = n


# ---------------------------------------------------------------------- reading and analysis
@dataclass(frozen=True)
class Recording:
    """A recording as read back: header, committed rows, and the full-space drift sums."""

    path: Path
    header: dict
    rows: np.ndarray  # (n, k) float64, read-only view of the committed rows
    s2: np.ndarray  # (2,) the S2 slots
    full: np.ndarray | None  # (7, d) or None

    def directions(self) -> np.ndarray:
        """The ``(d, k)`` directions (regenerated from the seed for random ones)."""
        h = self.header
        if h["seed"] is None:
            return np.load(self.path / DIRECTIONS)
        return random_directions(h["d"], h["k"], h["seed"])


def load_recording(path: str | os.PathLike[str]) -> Recording:
    """Open the recording at ``path`` read-only (also while a recorder is appending to it)."""
    path = Path(path)
    if not (path / HEADER).exists():
        raise FileNotFoundError(
            f"{path} is not a trajectory recording ({HEADER} missing): record one with "
            "TrajectoryRecorder first"
        )
    header = json.loads((path / HEADER).read_text())
    state = np.load(path / STATE)
    rows = np.load(path / ROWS, mmap_mode="r")[: int(state[0])]
    full = np.load(path / FULL, mmap_mode="r") if header["track_drift"] else None
    return Recording(path, header, rows, state[1:3].copy(), full)


def drift_summary(rec: Recording) -> dict:
    """``drift_per_epoch`` ``|mu|``, ``drift_displacement`` ``|mu| (N - 1)`` and
    ``drift_relative`` (displacement / RMS of the detrended path, all ``d`` coordinates), as
    :func:`sgdvi.irreversibility.estimator.remove_drift` gives them for the ``N`` post-burn-in
    rows, from the full-space sums: with ``c_t = t - (N - 1)/2``,
    ``N var = S2 - |S1|^2 / N - 2 mu.(Sk - (N-1)/2 S1) + |mu|^2 sum c_t^2``. NaN without them."""
    N = len(rec.rows) - rec.header["burn_in"]
    nan = {"drift_per_epoch": np.nan, "drift_displacement": np.nan, "drift_relative": np.nan}
    if rec.full is None or N < 2:
        return nan
    slot = 1 + 3 * (N % 2)
    u_last, s1, sk = (np.asarray(rec.full[slot + i]) for i in range(3))
    mu = u_last / (N - 1)
    total = rec.s2[N % 2] - s1 @ s1 / N - 2.0 * mu @ (sk - 0.5 * (N - 1) * s1)
    total += (mu @ mu) * N * (N * N - 1.0) / 12.0
    disp = float(np.linalg.norm(mu) * (N - 1))
    rms = float(np.sqrt(max(total, 0.0) / N))
    rel = disp / rms if rms > 0 else np.inf
    return {"drift_per_epoch": float(np.linalg.norm(mu)), "drift_displacement": disp,
            "drift_relative": rel}  # fmt: skip


def detrend_rows(rows: np.ndarray) -> np.ndarray:
    """``x_t - t mu`` of projected rows, ``mu = (x_{N-1} - x_0) / (N - 1)``: the projection of
    the detrended weights (projection is linear), formed as
    :func:`sgdvi.irreversibility.sgd._detrend` forms the weights'."""
    rows = np.asarray(rows, dtype=np.float64)
    mu = (rows[-1] - rows[0]) / (len(rows) - 1)
    return rows - np.arange(len(rows))[:, None] * mu


def analyse_recording(
    path: str | os.PathLike[str],
    s: sgd.Settings,
    log=None,
    batch: int = 20,
    start: int | None = None,
) -> tuple[dict, list[sgd.Projection]]:
    """:func:`sgdvi.irreversibility.sgd.analyse_current` on a recording (rows ``start`` on,
    default the header's ``burn_in``): the same summary keys and :class:`~sgd.Projection` s.

    (a) uses the first ``s.m`` recorded directions (``D(x)`` eigenvectors in decreasing order,
    or random ones): the same coordinates, ``L_hat``, z-scores, stationarity flags and (same
    permutations) surrogate ranks as ``analyse_current(weights, V[:, :m])`` of the full
    weights; the surrogates' increments are the float32 increments of the projected path
    (``analyse_current`` rounds the full-space increments to float32 before projecting), so
    surrogate z-scores agree to ~1e-6.

    (b) are held-out principal components *within the recorded subspace* ``span(V)`` (first
    half of the projected walk, ``L_hat`` on the second half), not of all weights: for ``k =
    m`` ``D(x)`` eigenvectors they rotate (a)'s subspace to the walk's principal axes; for
    random directions with ``k > m`` they are PCs of a Johnson-Lindenstrauss sketch of the
    walk, which approximate the sketched top PCs of the full walk only where their variance
    dominates the rest's. With ``V`` the identity (``k = d``) (b) and the verdict equal the
    full-weight analysis exactly.

    The drift keys come from the full-space sums (:func:`drift_summary`; NaN when
    ``track_drift`` was off or ``start`` is not the header's ``burn_in``); ``n_epochs`` counts
    the analysed rows (epochs or steps: ``every``).
    """
    rec = load_recording(path)
    h = rec.header
    start = h["burn_in"] if start is None else int(start)
    if s.m > h["k"]:
        raise ValueError(
            f"irreversibility m = {s.m} but {path} recorded k = {h['k']} directions: "
            f"set m <= {h['k']}"
        )
    y = detrend_rows(rec.rows[start:])
    inc = np.diff(y, axis=0).astype(np.float32)
    inc_t = np.ascontiguousarray(inc[:, : s.m].T)
    drift = drift_summary(rec) if start == h["burn_in"] else drift_summary(replace(rec, full=None))
    drift["n_epochs"] = len(y)
    summary, projs = sgd.analyse_projected(y[:, : s.m], inc_t, inc, drift, s, log, batch, h["kind"])
    return summary | {"directions": h["kind"], "k": h["k"], "every": h["every"]}, projs
