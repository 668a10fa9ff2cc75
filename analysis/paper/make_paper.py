"""Reproduce the claims of hypercolumn sparsification: run the grids, make figures and REPORT.md.

Usage::

    python analysis/paper/make_paper.py [--quick] [--jobs N] [--out DIR] [--only digits,fashion]
                                        [--report-only] [--json PATH]

``make paper`` runs the full study (grids in ``analysis/paper/experiments.toml``, section
``[full]``) and writes ``analysis/REPORT.md`` and ``analysis/figures/*.png|pdf``;
``make paper-quick`` runs the reduced smoke-test grid (``[quick]``) into ``output/paper-quick``.

Every grid point x seed is one training run; its record is cached as
``<out>/results/paper_cache/<hash>.json`` (atomic writes) so an interrupted study resumes
where it stopped. The report lists, for every table, when its runs were produced and whether
this invocation computed them or read them from the cache. ``--report-only`` makes the report
from whatever is cached, without training (missing points are shown as "–" and listed).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import math
import os
import platform
import shlex
import sys
import time
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from runs import code_version, read_cached, run_cached, run_key, unique_specs  # noqa: E402

__all__ = ["main", "build_specs", "load_grid"]


def load_grid(quick: bool, path=HERE / "experiments.toml") -> dict:
    """The ``[quick]`` or ``[full]`` section of the experiment grid file."""
    from hcs_neuro.core.errors import ConfigError

    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the experiment grid ({exc})") from None
    key = "quick" if quick else "full"
    if key not in raw:
        raise ConfigError(f"{path}: missing section [{key}]")
    return raw[key]


def _base(ds: dict, seed: int) -> dict:
    spec = {
        "dataset": ds["dataset"], "base_config": ds["base_config"], "channels": int(ds["channels"]),
        "layers": int(ds.get("layers", 0)), "epochs": int(ds["epochs"]), "batch_size": int(ds["batch_size"]),
        "train_subset": int(ds.get("train_subset", 0)), "weight_bits": 2, "act_bits": 1, "hcs": True, "k": 0.25,
        "learning": "probabilistic", "data_fraction": 1.0, "seed": int(seed),
    }
    if "lr" in ds:  # pinned in the grid file: the run key then no longer depends on the base config's lr
        spec["lr"] = float(ds["lr"])
    return spec


def _grid_base(ds: dict, seed: int) -> dict:
    """Base spec of the precision, learning-rule and k studies.

    ``grid_epochs`` and ``grid_test_subset`` (optional keys of a dataset section) override the
    epochs and evaluate on a fixed stratified test subset for these studies only (the
    data-efficiency study keeps ``epochs`` and the full test split). Absent keys add nothing to
    the spec, so sections without them keep their cached run keys.
    """
    b = _base(ds, seed)
    if ds.get("grid_epochs"):
        b["epochs"] = int(ds["grid_epochs"])
    if ds.get("grid_test_subset"):
        b["test_subset"] = int(ds["grid_test_subset"])
    return b


def build_specs(ds: dict, seeds) -> dict:
    """Run specs of one dataset section, per study (specs shared by studies are listed in each)."""
    studies = {"precision": [], "learning": [], "k": [], "data": []}
    for seed in seeds:
        b0 = _base(ds, seed)
        b = _grid_base(ds, seed)
        for wb in ds.get("weight_bits", []):
            for ab in ds.get("act_bits", []):
                for hcs in (True, False):
                    studies["precision"].append({**b, "weight_bits": wb, "act_bits": ab, "hcs": hcs})
        for wb in ds.get("learning_bits", []):
            for rule in ("probabilistic", "shadow"):
                for hcs in (True, False):
                    studies["learning"].append({**b, "weight_bits": wb, "learning": rule, "hcs": hcs})
        if ds.get("k_fractions"):
            for kf in ds["k_fractions"]:
                studies["k"].append({**b, "k": float(kf)})
            studies["k"].append({**b, "hcs": False})
        for f in ds.get("data_fractions", []):
            ep = min(int(ds.get("data_max_epochs", ds["epochs"])), max(int(ds["epochs"]), math.ceil(ds["epochs"] / f)))
            for hcs in (True, False):
                spec = {**b0, "data_fraction": float(f), "hcs": hcs}
                if f < 1.0:
                    spec["epochs"] = ep
                studies["data"].append(spec)
    # run order: every point for all seeds before the next point (an interrupted study then has
    # complete seed sets for the points it reached)
    n_seeds = len(list(seeds))
    for name, lst in studies.items():
        per = len(lst) // max(n_seeds, 1)
        studies[name] = [lst[j * per + i] for i in range(per) for j in range(n_seeds)]
    # normalise: no-HCS runs do not depend on k; keep k fixed there so they are shared
    for lst in studies.values():
        for s in lst:
            if not s["hcs"]:
                s["k"] = 0.25
            s["k"] = float(s["k"])
    return studies


def _worker_run(args):
    spec, cache, command = args
    return run_cached(spec, cache, command=command, threads=1)


def _worker_probe(args):
    spec, cache, command = args
    import json

    from hcs_neuro.core.io import write_json_atomic
    from theory_probe import probe_training

    path = Path(cache) / f"theory-{run_key(spec)}.json"
    if path.exists():
        rec = json.loads(path.read_text())
        if rec.get("spec") == spec:
            rec["cached"] = True
            return rec
    code = code_version()  # hashed when the training code is imported, before it runs
    rec = probe_training(spec, threads=1)
    rec["produced_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    rec["produced_by"] = command
    rec["code"] = code
    write_json_atomic(path, rec)
    rec["cached"] = False
    return rec


def _run_all(tasks, fn, jobs: int, desc: str, report_only: bool, cache: Path, prefix: str = ""):
    """Run ``fn`` over tasks (in a process pool when jobs > 1); returns records, skipping failures."""
    import json

    from tqdm import tqdm

    if report_only:
        recs = (read_cached(cache / f"{prefix}{run_key(spec)}.json") for spec, _, _ in tasks)
        return [r for r in recs if r is not None]
    out = []
    bar = tqdm(total=len(tasks), desc=desc, unit="run", file=sys.stderr)
    if jobs <= 1:
        for t in tasks:
            out.append(fn(t))
            bar.update(1)
    else:
        import multiprocessing as mp

        with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("fork")) as ex:
            futs = [ex.submit(fn, t) for t in tasks]
            for f in cf.as_completed(futs):
                out.append(f.result())
                bar.update(1)
    bar.close()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="reduced smoke-test grid (CI)")
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("JOBS", "2")), help="parallel training runs")
    ap.add_argument("--out", help="output folder (default: analysis/ for the full study, output/paper-quick "
                                  "for --quick); REPORT.md, figures/ and results/paper_cache/ go there")
    ap.add_argument("--only", help="comma-separated dataset sections to run (digits, fashion)")
    ap.add_argument("--report-only", action="store_true", help="no training: report what is cached")
    ap.add_argument("--json", metavar="PATH", help="also write the aggregated numbers as JSON "
                                                   "(default: <out>/results/paper_summary.json)")
    args = ap.parse_args(argv)
    from hcs_neuro.core.errors import ConfigError, HCSError

    try:
        if args.jobs < 1:
            raise ConfigError(f"--jobs = {args.jobs}: allowed >= 1")
        out = Path(args.out) if args.out else (REPO / ("output/paper-quick" if args.quick else "analysis"))
        grid = load_grid(args.quick)
        seeds = list(grid.get("seeds", [0, 1, 2]))
        sections = [k for k, v in grid.items() if isinstance(v, dict)]
        if args.only:
            want = [s.strip() for s in args.only.split(",") if s.strip()]
            bad = [s for s in want if s not in sections]
            if bad:
                raise ConfigError(f"--only {args.only!r}: unknown section(s) {', '.join(bad)}; allowed "
                                  f"{', '.join(sections)}")
            sections = [s for s in sections if s in want]
        return _study(args, out, grid, seeds, sections)
    except HCSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _study(args, out: Path, grid: dict, seeds, sections) -> int:
    from report import write_report

    os.chdir(REPO)  # configs are given relative to the repository root
    cache = out / "results" / "paper_cache"
    cache.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python", "analysis/paper/make_paper.py", *[shlex.quote(a) for a in sys.argv[1:]]])
    t_start = time.time()
    results = {}
    for name in sections:
        ds = grid[name]
        if ds["dataset"] != "digits" and not _dataset_available(ds["dataset"]):
            print(f"note: {ds['dataset']} not found; section {name} skipped", file=sys.stderr)
            results[name] = {"grid": ds, "skipped": f"{ds['dataset']} files not found", "studies": {}, "records": [],
                             "probes": [], "sims": []}
            continue
        studies = build_specs(ds, seeds)
        specs = unique_specs([s for lst in studies.values() for s in lst])
        t0 = time.time()
        recs = _run_all([(s, str(cache), command) for s in specs], _worker_run, args.jobs, f"{name} runs",
                        args.report_only, cache)
        probes = []
        if int(ds.get("theory_epochs", 0)) > 0:
            pspecs = [{**_base(ds, seed), "epochs": int(ds["theory_epochs"]), "hcs": hcs, "probe": True}
                      for seed in seeds for hcs in (True, False)]
            probes = _run_all([(s, str(cache), command) for s in pspecs], _worker_probe, args.jobs,
                              f"{name} theory", args.report_only, cache, prefix="theory-")
        sims = _sim_energy(ds, studies, cache, command, args.report_only, name)
        results[name] = {"grid": ds, "studies": studies, "records": recs, "probes": probes, "sims": sims,
                         "n_specs": len(specs), "wall_time_s": time.time() - t0}
    summary = write_report(out, results, seeds=seeds, command=command, quick=args.quick,
                           wall_time_s=time.time() - t_start, machine=_machine(), json_path=args.json)
    print(f"wrote {out / 'REPORT.md'} ({summary['n_runs']} runs, {summary['n_fresh']} computed now, "
          f"{summary['n_cached']} from the cache) in {time.time() - t_start:.0f} s")
    return 0


def _sim_energy(ds: dict, studies: dict, cache: Path, command: str, report_only: bool, name: str) -> list:
    """Simulated-energy records of a section (``sim_energy_*`` keys; none when absent).

    Runs in this process, one point after the other (Brian2 ``runtime`` device by default: no
    C++ compilation, so a few images per model cost seconds); points whose model is not kept
    with their run record are retrained first (:mod:`sim_energy`).
    """
    import json

    from sim_energy import sim_cached, sim_key, sim_specs

    n = int(ds.get("sim_energy_images", 0))
    if n <= 0:
        return []
    device = ds.get("sim_energy_device", "runtime")
    specs = sim_specs(ds, studies)
    out = []
    if report_only:
        recs = (read_cached(cache / f"{sim_key(s, n, device)}.json") for s in specs)
        return [r for r in recs if r is not None]
    from tqdm import tqdm

    for s in tqdm(specs, desc=f"{name} simulated energy", unit="model", file=sys.stderr):
        out.append(sim_cached(s, cache, n, device=device, n_jobs=1, command=command))
    return out


def _dataset_available(name: str) -> bool:
    from hcs_neuro.core.datasets import find_idx_dir
    from hcs_neuro.core.errors import DataError

    try:
        find_idx_dir(name)
        return True
    except DataError:
        return False


def _machine() -> str:
    try:
        import torch

        tv = torch.__version__
    except Exception:  # pragma: no cover - torch missing
        tv = "n/a"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{platform.node()}: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores "
            f"(shared; 1-min load average {load:.1f} at the end), Python {platform.python_version()}, "
            f"PyTorch {tv}")


if __name__ == "__main__":
    sys.exit(main())
