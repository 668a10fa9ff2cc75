"""Sweep results: the tidy table, the xarray Dataset and the files they are written to.

One row per point x seed (parameters with their unit in the column name, metrics,
``run_time_s``, ``error``) as Parquet and CSV, an xarray Dataset (NetCDF, h5netcdf engine) with
one dimension per parameter plus ``seed``, and the sweep metadata (spec, package versions,
seeds) in ``OUT/sweep.json``.
"""

from __future__ import annotations

import os
from pathlib import Path

from hcs_neuro.core.errors import ConfigError
from hcs_neuro.core.io import atomic_path, read_json, read_text
from hcs_neuro.sweep.grid import expand_grid, read_point
from hcs_neuro.sweep.spec import SweepSpec

# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


def assemble_results(spec: SweepSpec, out: str | os.PathLike | None = None):
    """The tidy results table, read from the point files.

    One row per point x seed in grid order; columns ``point_id``, one per parameter (unit in
    the name), ``seed``, the requested metrics, ``run_time_s`` (wall) and ``cpu_time_s`` of the
    evaluation on its worker, and ``error`` (``""`` when none; metrics are NaN then).

    Raises
    ------
    ConfigError
        If a point has no result file yet (the sweep has not finished).
    """
    import pandas as pd

    out = Path(out) if out is not None else spec.out
    rows = []
    missing = 0
    for p in expand_grid(spec):
        rec = read_point(out, p)
        if rec is None:
            missing += 1
            continue
        row = {"point_id": p.point_id}
        for param in spec.parameters:
            row[param.column] = p.params[param.name]
        row["seed"] = p.seed
        for m in spec.metrics:
            row[m] = float(rec.get("metrics", {}).get(m, float("nan")))
        row["run_time_s"] = float(rec.get("run_time_s", float("nan")))
        row["cpu_time_s"] = float(rec.get("cpu_time_s", float("nan")))
        row["error"] = rec.get("error", "") or ""
        if not row["error"] and any(m not in rec.get("metrics", {}) for m in spec.metrics):
            row["error"] = "MissingMetric: point file lacks a requested metric"
        rows.append(row)
    if missing:
        raise ConfigError(f"sweep {spec.name} in {out}: {missing} of {spec.n_points} points have "
                          "no result yet; run the sweep again to compute them")
    table = pd.DataFrame(rows)
    table["seed"] = table["seed"].astype("int64")
    for param in spec.parameters:
        if param.kind == "int":
            table[param.column] = table[param.column].astype("int64")
        elif param.kind == "float":
            table[param.column] = table[param.column].astype("float64")
    return table


def to_xarray(spec: SweepSpec, table):
    """The results as an xarray Dataset: one dimension per parameter (coordinate = its column
    name, unit in ``attrs``) plus ``seed``; data variables = metrics, ``run_time_s``, ``error``."""
    dims = [p.column for p in spec.parameters] + ["seed"]
    ds = table.drop(columns=["point_id"]).set_index(dims).to_xarray()
    for p in spec.parameters:
        ds[p.column].attrs.update({"parameter": p.name, "units": p.unit or "1"})
    ds["run_time_s"].attrs["units"] = "s"
    ds["cpu_time_s"].attrs["units"] = "s"
    ds["error"] = ds["error"].fillna("").astype(str)
    ds.attrs.update({"sweep": spec.name, "target_kind": spec.target_kind,
                     "seed_mode": spec.seed_mode, "metrics": ",".join(spec.metrics)})
    return ds


def write_results(spec: SweepSpec, out: str | os.PathLike, table) -> dict[str, Path]:
    """Write ``results.parquet``, ``results.csv`` and ``results.nc`` (h5netcdf) atomically."""
    out = Path(out)
    files = {"parquet": out / "results.parquet", "csv": out / "results.csv",
             "netcdf": out / "results.nc"}
    with atomic_path(files["parquet"]) as tmp:
        table.to_parquet(tmp, index=False)
    with atomic_path(files["csv"]) as tmp:
        table.to_csv(tmp, index=False)
    ds = to_xarray(spec, table)
    engine = netcdf_engine()
    with atomic_path(files["netcdf"]) as tmp:
        ds.to_netcdf(tmp, engine=engine)
    return files


def netcdf_engine() -> str:
    """``"h5netcdf"`` (NetCDF4) when its h5py backend is importable, else ``"scipy"`` (NetCDF3
    classic, which xarray and every NetCDF reader open as well)."""
    try:
        import h5netcdf  # noqa: F401
        import h5py  # noqa: F401  (h5netcdf's backend)
    except ImportError:
        return "scipy"
    return "h5netcdf"


def load_metadata(path: str | os.PathLike) -> dict:
    """``sweep.json`` of a sweep folder (or of the folder holding a results file)."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    meta_path = folder / "sweep.json"
    if not meta_path.is_file():
        raise ConfigError(f"{meta_path}: no sweep metadata (is {path} a sweep output folder?)")
    meta = read_json(meta_path, what="sweep metadata")
    for key, typ in (("metrics", list), ("parameters", list)):
        if key in meta and not isinstance(meta[key], typ):
            raise ConfigError(f"{meta_path}: field {key!r} must be a {typ.__name__}; not an hcs-neuro sweep.json")
    return meta


def load_results(path: str | os.PathLike):
    """Read a results table: a sweep folder (its ``results.parquet``), a ``.parquet`` or ``.csv``.

    Raises
    ------
    ConfigError
        Missing file or an unsupported extension.
    """
    import pandas as pd

    path = Path(path)
    if path.is_dir():
        path = path / "results.parquet"
    if not path.is_file():
        raise ConfigError(f"{path}: no such results file (run `hcs-neuro sweep SPEC` first)")
    if path.suffix not in (".parquet", ".csv"):
        raise ConfigError(f"{path}: unsupported results file; allowed: a sweep folder, "
                          ".parquet, .csv")
    try:
        if path.suffix == ".parquet":
            table = pd.read_parquet(path)
        else:
            read_text(path, what="results table", limit=2 ** 30)  # UTF-8 check, one clear message
            table = pd.read_csv(path, keep_default_na=False, na_values=[""])
            if "error" in table:
                table["error"] = table["error"].fillna("").astype(str)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 (pyarrow/pandas raise many types for corrupt files)
        raise ConfigError(f"{path}: not a readable results table ({type(exc).__name__}: "
                          f"{' '.join(str(exc).split())[:200]})") from None
    if len(table.columns) == 0 or "seed" not in table.columns:
        raise ConfigError(f"{path}: not an hcs-neuro results table (no 'seed' column)")
    return table
