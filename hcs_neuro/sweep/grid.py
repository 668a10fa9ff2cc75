"""The grid of a sweep: every point x seed with a content hash, and which are still missing.

The Cartesian product of the parameter values (in spec order) times the seeds; every point x
seed has a content hash (``point_id``) of the target settings, the parameter values and the
seed, so results can be found again after an interruption.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hcs_neuro.sweep.spec import SweepSpec

# --------------------------------------------------------------------------------------------
# Grid
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    """One point x seed of the grid.

    ``index`` is the row number in the results table; ``seed`` the user's seed and
    ``eval_seed`` the seed passed to the target (equal for ``seed_mode = "shared"``).
    """

    index: int
    params: dict
    seed: int
    eval_seed: int
    point_id: str


def content_digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def expand_grid(spec: SweepSpec) -> list[Point]:
    """Every point x seed of the spec, in table order (parameters in spec order, the first
    varying slowest; seeds innermost)."""

    target_key = {"kind": spec.target_kind, "cfg": spec.target_cfg}
    points = []
    names = [p.name for p in spec.parameters]
    units = {p.name: p.unit for p in spec.parameters}
    index = 0
    for combo in itertools.product(*(p.values for p in spec.parameters)):
        params = dict(zip(names, combo))
        key_params = {n: [params[n], units[n]] for n in names}
        for seed in spec.seeds:
            if spec.seed_mode == "shared":
                eval_seed = seed
            else:
                entropy = int(content_digest(key_params)[:16], 16)
                eval_seed = int(np.random.SeedSequence([seed, entropy]).generate_state(1)[0])
            pid = content_digest({"target": target_key, "params": key_params, "seed": seed,
                           "eval_seed": eval_seed})[:24]
            points.append(Point(index=index, params=params, seed=seed, eval_seed=eval_seed,
                                point_id=pid))
            index += 1
    return points


def point_path(out: Path, point: Point) -> Path:
    return out / "points" / f"{point.point_id}.json"


def read_point(out: Path, point: Point) -> dict | None:
    """A point's stored record, or None when there is none or it is unusable (not a JSON object
    for this point: it is then computed again and the file replaced)."""
    path = point_path(out, point)
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    if (not isinstance(rec, dict) or rec.get("point_id") not in (None, point.point_id)
            or not isinstance(rec.get("metrics", {}), dict) or not isinstance(rec.get("error", ""), str)
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                       for v in rec.get("metrics", {}).values())):
        return None
    return rec


def pending_points(spec: SweepSpec, out: str | os.PathLike | None = None, *,
                   retry_errors: bool = False) -> list[Point]:
    """The points of the grid without a usable result file under ``OUT/points``.

    A point file counts as done when it has every requested metric, or records an error (unless
    ``retry_errors``).
    """
    out = Path(out) if out is not None else spec.out
    todo = []
    for p in expand_grid(spec):
        rec = read_point(out, p)
        if rec is None:
            todo.append(p)
        elif rec.get("error"):
            if retry_errors:
                todo.append(p)
        elif not all(m in rec.get("metrics", {}) for m in spec.metrics):
            todo.append(p)
    return todo


