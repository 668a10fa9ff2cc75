"""Parameter sweeps on Dask: spec, grid, resumable runner, tidy results.

A sweep evaluates a *target* (a hypercolumn circuit, later a whole network, or any importable
Python function) at every point of a parameter grid, once per seed, on Dask distributed (a local
multi-process cluster by default, an existing scheduler by address).

The pieces, in the order data flows through them:

* **spec** (TOML, :func:`load_sweep_spec`): ``[sweep]`` (name, seeds, metrics, out),
  ``[target]`` (kind + fixed settings), ``[parameters]`` (dotted name -> list or range, with
  units). Validated against the target's declared parameters, units and metrics; every mistake is a
  :class:`~hcs_neuro.core.errors.ConfigError` naming the file, field and value.
* **grid** (:func:`expand_grid`): the Cartesian product of the parameter values (in spec order)
  times the seeds; every point x seed has a content hash (``point_id``) of the target settings,
  the parameter values and the seed, so results can be found again after an interruption.
* **runner** (:func:`run_sweep`): submits the missing points to Dask, persists each finished
  point atomically as ``OUT/points/<point_id>.json`` as soon as it completes (on the client, so no
  shared file system is needed), and records a raising point with its error instead of stopping.
* **results** (:func:`assemble_results`): the tidy table (one row per point x seed, parameters
  with their unit in the column name, metrics, ``run_time_s``, ``error``) as Parquet and CSV, an
  xarray Dataset (NetCDF, h5netcdf engine) with one dimension per parameter plus ``seed``, and the
  sweep metadata (spec, package versions, seeds) in ``OUT/sweep.json``.

Targets
-------
A target is a function ``evaluate(target_cfg, params, seed) -> dict[str, float]`` registered
under a kind (:func:`register_target`). ``params`` maps each swept name to a float in the unit of
its column (``neuron.tau_m`` -> float in ms when the column is ``neuron.tau_m_ms``), an int for
integer parameters, or a str for categorical ones. Adding a target kind is one :class:`Target`
and one :func:`register_target` call; the built-in kinds live in :mod:`hcs_neuro.sweep.targets`
and are imported the first time a spec names them.

Modules: :mod:`~hcs_neuro.sweep.spec` (spec, registry), :mod:`~hcs_neuro.sweep.grid`,
:mod:`~hcs_neuro.sweep.runner` (Dask, imported when a sweep runs),
:mod:`~hcs_neuro.sweep.results`, :mod:`~hcs_neuro.sweep.worker` (worker hooks). The engine
needs only the core and Dask; Brian2 is imported by the targets, on the workers.
"""

from hcs_neuro.sweep.grid import Point, expand_grid, pending_points
from hcs_neuro.sweep.results import (
    assemble_results,
    load_metadata,
    load_results,
    netcdf_engine,
    to_xarray,
    write_results,
)
from hcs_neuro.sweep.runner import SweepResult, package_versions, run_point, run_sweep
from hcs_neuro.sweep.spec import (
    ParamInfo,
    SweepParameter,
    SweepSpec,
    Target,
    get_target,
    load_sweep_spec,
    parse_sweep_spec,
    register_target,
    target_kinds,
)

__all__ = [
    "ParamInfo", "Target", "register_target", "get_target", "target_kinds", "SweepParameter", "SweepSpec",
    "Point", "load_sweep_spec", "parse_sweep_spec", "expand_grid", "pending_points", "run_point", "run_sweep",
    "SweepResult", "assemble_results", "to_xarray", "package_versions", "netcdf_engine", "write_results",
    "load_results", "load_metadata",
]
