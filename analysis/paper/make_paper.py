"""The claims study of hypercolumn sparsification on the shipped recipes: run it, report it.

Usage::

    python analysis/paper/make_paper.py [--quick] [--out DIR] [--only digits,fashion]
                                        [--stages NAME,...] [--report-only] [--estimate] [--json PATH]

Every experiment is a sweep spec in ``analysis/paper/specs/`` (``specs/quick/`` for ``--quick``)
run by the package's sweep engine (:func:`hcs_neuro.sweep.run_sweep`, target kind ``python``,
one local worker with one thread): the engine keeps one record per point x seed
(``<out>/points/<point_id>.json``) and computes only the points that have none, so an
interrupted study resumes where it stopped, and the committed records under
``analysis/paper/records/`` are reused. The stages run in :data:`STAGES` order (the most
informative cells first); each can also be run by hand::

    PYTHONPATH=analysis/paper .venv/bin/hcs-neuro sweep analysis/paper/specs/fashion_grid.toml --workers 1

``make paper`` runs every stage, then writes ``analysis/REPORT.md`` and ``analysis/figures/``
from the records; ``make paper-quick`` runs the reduced specs (an 8-channel digits net, 1 epoch)
into ``output/paper-quick`` (CI smoke test). ``--report-only`` trains nothing and reports what is
recorded (missing points are listed). After the fixed stages, every cell whose effect's 95 %
interval crosses 0 with 3 seeds gets seeds 3 and 4 (a generated spec in ``specs/extra/``, run at
the end; ``--no-extra-seeds`` skips that). ``--estimate`` measures the training throughput and the
test-pass cost of every cell on this machine (a few steps each) and prints the time the missing
points and the whole study would take, without running them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

__all__ = ["STAGES", "QUICK_STAGES", "EXTRA_SEEDS", "main", "load_stage_spec", "stage_specs", "read_records",
           "estimate", "extra_seed_cells", "write_extra_specs"]

#: (dataset section, spec file stem) in run order: the Fashion ternary/binary cells first (and
#: their robustness), then digits, then the rest of Fashion-MNIST.
STAGES = (
    ("fashion", "fashion_first"),
    ("fashion", "robustness_fashion"),
    ("fashion", "energy_fashion"),
    ("digits", "digits_grid"),
    ("digits", "robustness_digits"),
    ("digits", "robustness_digits_float"),
    ("digits", "energy_digits"),
    ("digits", "digits_data"),
    ("digits", "theory_digits"),
    ("fashion", "fashion_grid"),
    ("fashion", "robustness_fashion_float"),
    ("fashion", "fashion_data"),
    ("fashion", "theory_fashion"),
)
#: The smoke test's stages (``specs/quick/``).
QUICK_STAGES = (
    ("digits", "digits_grid"),
    ("digits", "robustness_digits"),
    ("digits", "energy_digits"),
    ("digits", "digits_data"),
    ("digits", "theory_digits"),
)
SECTIONS = ("digits", "fashion")
#: Targets that read the grid's models (they wait for them; their errors are retried).
READS_MODELS = ("robustness:", "paper_energy:")
#: ``--estimate`` of the committed study (per-stage seconds measured on this machine), read by the report.
ESTIMATE_FILE = HERE / "estimate.json"


def _paper_env() -> None:
    """Workers import this folder's modules (``paper_grid:train_point``...): put it on PYTHONPATH
    (inherited by the Dask worker processes) and keep every library at one thread."""
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(HERE) not in parts:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE), *parts])
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def load_stage_spec(path: Path, out_root: Path | None = None):
    """Read a stage's spec; with ``out_root`` its ``[sweep] out`` and ``options.model_dir`` move
    under it (``OUT_ROOT/records/<name>``, ``OUT_ROOT/models/<name>``: the point hashes change
    with ``model_dir``, so such a study never mixes with the committed records).

    Raises
    ------
    hcs_neuro.core.errors.ConfigError
        Unreadable file, invalid TOML, or any invalid field (the engine's validation).
    """
    from hcs_neuro.core.errors import ConfigError
    from hcs_neuro.sweep import get_target, parse_sweep_spec

    try:
        raw = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"sweep spec {path}: cannot read it ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"sweep spec {path}: invalid TOML ({exc})") from None
    if out_root is not None:
        sweep = dict(raw.get("sweep", {}))
        sweep["out"] = str(Path(out_root) / "records" / Path(str(sweep.get("out", Path(path).stem))).name)
        raw["sweep"] = sweep
        target = dict(raw.get("target", {}))
        options = dict(target.get("options", {}))
        if "model_dir" in options:
            options["model_dir"] = str(Path(out_root) / "models" / Path(str(options["model_dir"])).name)
            target["options"] = options
            raw["target"] = target
    spec = parse_sweep_spec(raw, source=str(path), spec_dir=Path(path).parent)
    # the engine imports a python target's function only when the sweep starts; a study checks its
    # stages before the first (long) one runs
    before_run = get_target(spec.target_kind).before_run
    if before_run is not None:
        try:
            before_run(spec.target_cfg)
        except ConfigError as exc:
            raise ConfigError(f"sweep spec {path}: {exc}") from None
    return spec


def stage_specs(quick: bool, out_root: Path | None, only=None, stages=None, extra: bool = True) -> list:
    """``[(section, stem, SweepSpec)]`` of the study in run order (``only``: sections; ``stages``:
    stems); with ``extra``, the generated specs of ``specs/extra/`` (more seeds, see
    :func:`write_extra_specs`) follow the fixed stages."""
    from hcs_neuro.core.errors import ConfigError

    folder = HERE / "specs" / ("quick" if quick else "")
    order = list(QUICK_STAGES if quick else STAGES)
    if extra and not quick:
        order += [(f.stem.split("__")[0], f"extra/{f.stem}") for f in sorted((folder / "extra").glob("*.toml"))]
    known = {stem for _, stem in order}
    for name in stages or ():
        if name not in known:
            raise ConfigError(f"--stages: unknown stage {name!r}; allowed: {', '.join(s for _, s in order)}")
    out = []
    for section, stem in order:
        if only and section not in only:
            continue
        if stages and stem not in stages:
            continue
        out.append((section, stem, load_stage_spec(folder / f"{stem}.toml", out_root)))
    return out


#: Seeds added to a cell whose effect's interval crosses 0 (issue 27: 5 seeds there).
EXTRA_SEEDS = (3, 4)


def extra_seed_cells(effects: dict, complete: set) -> dict:
    """The cells that need :data:`EXTRA_SEEDS`, from the report's effects (:func:`report.claim_effects`).

    ``complete``: stems of the stages whose every point is recorded (a cell is judged only on a
    complete stage). Returns ``{(section, source stem): [params, ...]}``: claim 1 cells (every weight x
    activity precision) whose HCS − no HCS interval crosses 0 with fewer than 5 seeds; claim 2 shares
    whose gain-minus-gain-with-all interval crosses 0; the robustness models when a robustness effect
    of the ternary/binary models crosses 0 (their grid cell then gets the seeds too).
    """
    out = {}

    def add(section, stem, params):
        lst = out.setdefault((section, stem), [])
        if params not in lst:
            lst.append(params)

    for section, r in effects.items():
        grid, data, rob = f"{section}_grid", f"{section}_data", f"robustness_{section}"
        if grid in complete:
            for (wb, ab), e in r["claim1"]["cells"].items():
                if e["crosses_zero"] and min(e["n_a"], e["n_b"]) < 5:
                    add(section, grid, {"act_bits": ab, "weight_bits": wb, "data_fraction": 1.0})
        if data in complete:
            for f, e in r["claim2"]["gain_minus_all"].items():
                if e["crosses_zero"] and min(r["claim2"]["gains"][f]["n_a"], r["claim2"]["gains"][f]["n_b"]) < 5:
                    add(section, data, {"act_bits": 1, "weight_bits": 2, "data_fraction": f})
                    add(section, grid, {"act_bits": 1, "weight_bits": 2, "data_fraction": 1.0})
        if rob in complete and grid in complete:
            prec = r["claim5"].get("w2a1", {"kinds": {}})
            crossing = [lv for k in prec["kinds"].values() for lv in k["levels"].values()
                        if lv["robustness"]["crosses_zero"] and min(lv["robustness"]["n_a"], lv["robustness"]["n_b"]) < 5]
            if crossing:
                add(section, rob, {"act_bits": 1, "weight_bits": 2, "data_fraction": 1.0})
                add(section, grid, {"act_bits": 1, "weight_bits": 2, "data_fraction": 1.0})
    return out


def write_extra_specs(cells: dict, folder: Path = HERE / "specs") -> list:
    """Write one spec per cell of :func:`extra_seed_cells` into ``folder/extra/`` (the source spec
    with seeds :data:`EXTRA_SEEDS` and the cell's parameter values; the same ``[target]`` and
    ``out``, hence the same records); returns the new files (existing ones are kept)."""
    import re

    from hcs_neuro.core.io import write_text_atomic

    new = []
    for (section, stem), cell_list in cells.items():
        src = (folder / f"{stem}.toml").read_text()
        for params in cell_list:
            tag = f"w{params['weight_bits']}_a{params['act_bits']}_f{params['data_fraction']:g}"
            path = folder / "extra" / f"{section}__{stem}__{tag}.toml"
            if path.exists():
                continue
            body = src[:src.index("[parameters]")]
            body = re.sub(r'(?m)^name = "([^"]+)"', lambda m: f'name = "{m.group(1)}_{tag}_seeds34"', body, count=1)
            body = re.sub(r"(?m)^seeds = .*$", f"seeds = {list(EXTRA_SEEDS)}", body, count=1)
            lines = [f"# Generated by make_paper.py (write_extra_specs): seeds {list(EXTRA_SEEDS)} for one cell of",
                     f"# {stem}.toml whose effect's 95 % interval crossed 0 with 3 seeds (issue 27: 5 seeds there).",
                     body.rstrip(), "", "[parameters]"]
            for name in ("act_bits", "weight_bits", "hcs", "data_fraction"):
                if name == "hcs":
                    lines.append('hcs = ["on", "off"]')
                elif name in params and f"\n{name} = " in "\n" + src[src.index("[parameters]"):]:
                    lines.append(f"{name} = [{params[name]!r}]")
            write_text_atomic(path, "\n".join(lines) + "\n")
            spec = load_stage_spec(path)
            if spec.target_cfg != load_stage_spec(folder / f"{stem}.toml").target_cfg:  # pragma: no cover
                path.unlink()
                raise RuntimeError(f"{path}: [target] differs from {stem}.toml")
            new.append(path)
    return new


def read_records(spec) -> tuple[list, list]:
    """The recorded points of a spec: ``(records, missing)``. A record is a dict with the point's
    parameters, ``seed``, ``metrics``, ``error``, ``finished_utc``, ``run_time_s`` and
    ``point_id``; ``missing`` lists the points without a record file."""
    from hcs_neuro.sweep import expand_grid

    recs, missing = [], []
    for p in expand_grid(spec):
        path = Path(spec.out) / "points" / f"{p.point_id}.json"
        try:
            rec = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            missing.append(p)
            continue
        recs.append({**p.params, "seed": p.seed, "point_id": p.point_id, "metrics": rec.get("metrics", {}),
                     "error": rec.get("error", ""), "finished_utc": rec.get("finished_utc", ""),
                     "run_time_s": rec.get("run_time_s", float("nan")),
                     "cpu_time_s": rec.get("cpu_time_s", float("nan")), "worker": rec.get("worker", "")})
    return recs, missing


def _models_ready(spec) -> list:
    """Model files a robustness or energy stage needs that are not there yet."""
    from hcs_neuro.sweep import expand_grid
    from paper_grid import model_file

    opts = spec.target_cfg.get("options", {})
    if "model_dir" not in opts or not spec.target_cfg["function"].startswith(READS_MODELS):
        return []
    return sorted({str(model_file(opts["model_dir"], opts["dataset"], p.params, p.seed)) for p in expand_grid(spec)
                   if not model_file(opts["model_dir"], opts["dataset"], p.params, p.seed).exists()})


def _dataset_available(name: str) -> bool:
    from hcs_neuro.core.datasets import load_dataset
    from hcs_neuro.core.errors import HCSError

    if name == "digits":
        return True
    try:
        load_dataset(name, "test")
        return True
    except HCSError:
        return False


def run_stages(specs, workers: int = 1, progress: bool = True) -> list:
    """Run every stage's missing points with the sweep engine; returns per-stage notes."""
    from hcs_neuro.sweep import pending_points, run_sweep

    _paper_env()
    notes = []
    for section, stem, spec in specs:
        dataset = spec.target_cfg.get("options", {}).get("dataset", "")
        if dataset and not _dataset_available(dataset):
            notes.append(f"{stem}: {dataset} not found; skipped")
            print(f"note: {notes[-1]}", file=sys.stderr)
            continue
        missing_models = _models_ready(spec)
        is_robustness = spec.target_cfg["function"].startswith(READS_MODELS)
        todo = pending_points(spec, retry_errors=is_robustness)
        if todo and missing_models:
            notes.append(f"{stem}: {len(missing_models)} model file(s) not trained yet (e.g. {missing_models[0]}); "
                         "skipped until its grid points are done")
            print(f"note: {notes[-1]}", file=sys.stderr)
            continue
        t0 = time.time()
        print(f"stage {stem}: {spec.n_points} points, {len(todo)} to compute", file=sys.stderr)
        if not todo:
            continue
        res = run_sweep(spec, n_workers=workers, progress=progress, retry_errors=is_robustness)
        notes.append(f"{stem}: {res.n_computed} computed in {time.time() - t0:.0f} s, {res.n_errors} with errors")
        print(notes[-1], file=sys.stderr)
    return notes


# -- the time estimate -----------------------------------------------------------------------------


def estimate(specs, steps: int = 4, probe_images: int = 300) -> dict:
    """Measure, on this machine, the training throughput and the test-pass cost of every distinct
    cell of the training stages (``steps`` training steps after a warm-up, ``probe_images`` test
    images through the reference), and the time every point would take.

    A point costs ``images trained / throughput + test images x test-pass cost per image``;
    robustness points ``(conditions x draws) x test images x test-pass cost``; theory points
    like a training point, times 1.3 (the instrumented loop). Returns per stage the estimated
    seconds of all points and of the missing ones, one worker.
    """
    from hcs_neuro.core.datasets import load_dataset
    from hcs_neuro.core.reference import forward
    from hcs_neuro.sweep import expand_grid, pending_points
    from hcs_neuro.train import measure_throughput
    from paper_grid import point_recipe, subset_epochs

    _paper_env()
    data, cells, out = {}, {}, {"stages": [], "cells": {}}

    def cell_cost(opts, params):
        key = (opts["dataset"], int(params["weight_bits"]), int(params["act_bits"]), params["hcs"])
        if key in cells:
            return cells[key]
        if opts["dataset"] not in data:
            data[opts["dataset"]] = (load_dataset(opts["dataset"], "train"), load_dataset(opts["dataset"], "test"))
        (x, y), (xt, yt) = data[opts["dataset"]]
        arch, cfg = point_recipe(opts["config"], params, epochs=1, batch_size=opts["batch_size"], lr=opts["lr"],
                                 seed=0, threads=1, weight_step=opts.get("weight_step", "range"),
                                 settings=opts.get("settings"), channels=opts.get("channels") or 0)
        n = min(len(y), (steps + 1) * int(opts["batch_size"]))
        ips = measure_throughput(arch, cfg, x[:n], y[:n], steps)
        from hcs_neuro.core.model import random_model

        model = random_model(arch, seed=0)
        t0 = time.perf_counter()
        forward(model, xt[:probe_images], keep_layers=False)
        per_image = (time.perf_counter() - t0) / probe_images
        cells[key] = (ips, per_image)
        out["cells"]["/".join(map(str, key))] = {"train_images_per_s": ips, "test_pass_s_per_image": per_image}
        print(f"  cell {'/'.join(map(str, key))}: {ips:.0f} training images/s, "
              f"{1e3 * per_image:.2f} ms per test image", file=sys.stderr)
        return cells[key]

    for section, stem, spec in specs:
        cfg = spec.target_cfg
        opts = dict(cfg.get("options", {}))
        fn = cfg["function"]
        if not _dataset_available(opts.get("dataset", "digits")):
            continue
        (x, y), (xt, yt) = data.get(opts["dataset"]) or (load_dataset(opts["dataset"], "train"),
                                                         load_dataset(opts["dataset"], "test"))
        data[opts["dataset"]] = ((x, y), (xt, yt))
        pend = {p.point_id for p in pending_points(spec)}
        tot = todo = 0.0
        for p in expand_grid(spec):
            if fn.startswith(READS_MODELS):
                grid_opts = _grid_options(opts["dataset"], specs)
                if grid_opts is None:  # its grid is not among the stages: not estimated
                    continue
                _, per_image = cell_cost(grid_opts, p.params)
                n_test = int(opts.get("test_images") or len(yt))
                n_cond = 1 + int(opts.get("draws", 1)) * sum(len(opts.get(k, [])) for k in ("gauss", "sp", "flip"))
                if fn.startswith("paper_energy:"):
                    n_cond = 2  # one forward pass keeping the layers, and the counting
                sec = n_cond * n_test * per_image
            else:
                ips, per_image = cell_cost(opts, p.params)
                frac = float(p.params.get("data_fraction", 1.0))
                n_train = len(y) if frac >= 1 else max(10, int(round(frac * len(y))))
                ep = subset_epochs(int(opts["epochs"]), frac, int(opts.get("max_epochs") or 10 * int(opts["epochs"])))
                n_test = int(opts.get("test_images") or len(yt))
                sec = ep * n_train / ips + n_test * per_image
                if fn.startswith("theory_probe:"):
                    sec *= 1.3
            tot += sec
            if p.point_id in pend:
                todo += sec
        out["stages"].append({"stage": stem, "points": spec.n_points, "missing": len(pend), "all_s": tot,
                              "missing_s": todo})
        print(f"{stem:28s} {spec.n_points:4d} points ({len(pend):3d} missing): all {tot / 3600:6.2f} h, "
              f"missing {todo / 3600:6.2f} h (1 worker)", file=sys.stderr)
    out["all_s"] = sum(s["all_s"] for s in out["stages"])
    out["missing_s"] = sum(s["missing_s"] for s in out["stages"])
    return out


def _grid_options(dataset: str, specs) -> dict | None:
    for _, stem, spec in specs:
        o = spec.target_cfg.get("options", {})
        if o.get("dataset") == dataset and spec.target_cfg["function"].startswith("paper_grid:"):
            return dict(o)
    return None


def _extra_round(specs, only, stages, args) -> list:
    """Seeds 3-4 for the cells whose interval crosses 0 (:func:`extra_seed_cells`), judged on the
    complete stages; writes their specs (``specs/extra/``) and runs them."""
    from report import claim_effects, collect

    data = collect(specs)
    complete = {st["stage"] for sec in data.values() for st in sec["stages"] if st["missing"] == 0}
    new = write_extra_specs(extra_seed_cells(claim_effects(data), complete))
    for path in new:
        print(f"new stage: {path.relative_to(REPO)} (seeds {list(EXTRA_SEEDS)})", file=sys.stderr)
    extra = [t for t in stage_specs(False, None, only=only) if t[1].startswith("extra/")
             and (not stages or t[1] in stages)]
    return run_stages(extra, workers=args.workers, progress=not args.no_progress) if extra else []


def machine() -> str:
    try:
        import torch

        tv = torch.__version__
    except ImportError:  # pragma: no cover
        tv = "n/a"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{platform.node()}: {platform.machine()}, {os.cpu_count()} CPU cores (shared; 1-min load average "
            f"{load:.1f}), Python {platform.python_version()}, PyTorch {tv}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the reduced smoke-test specs (specs/quick/)")
    ap.add_argument("--out", help="output folder: REPORT.md, figures/, records/, models/ (default: the committed "
                                  "study, analysis/; --quick: output/paper-quick)")
    ap.add_argument("--only", help="comma-separated sections: digits, fashion")
    ap.add_argument("--stages", help="comma-separated stage names (spec stems), in the study's order")
    ap.add_argument("--workers", type=int, default=1, help="sweep workers (one training process each; default 1)")
    ap.add_argument("--report-only", action="store_true", help="train nothing: report what is recorded")
    ap.add_argument("--estimate", action="store_true", help="measure this machine and print the run time; no run")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    ap.add_argument("--no-extra-seeds", action="store_true", help="do not add seeds 3-4 to the cells whose "
                                                                  "interval crosses 0 (specs/extra/)")
    ap.add_argument("--json", metavar="PATH", help="also write the report's numbers as JSON (default: "
                                                   "<out>/paper_summary.json)")
    args = ap.parse_args(argv)
    from hcs_neuro.core.errors import ConfigError, HCSError

    try:
        if args.workers < 1:
            raise ConfigError(f"--workers {args.workers}: allowed >= 1")
        only = [s.strip() for s in args.only.split(",") if s.strip()] if args.only else None
        for s in only or ():
            if s not in SECTIONS:
                raise ConfigError(f"--only {args.only!r}: unknown section {s!r}; allowed {', '.join(SECTIONS)}")
        stages = [s.strip() for s in args.stages.split(",") if s.strip()] if args.stages else None
        os.chdir(REPO)  # spec paths (configs, records, models) are relative to the repository root
        if args.out:
            out_root = Path(args.out).resolve()
        elif args.quick:
            out_root = REPO / "output" / "paper-quick"
        else:
            out_root = None  # the committed study: the specs' own paths
        specs = stage_specs(args.quick, out_root, only=only, stages=stages)
        report_dir = out_root if out_root is not None else REPO / "analysis"
        if args.estimate:
            est = estimate(specs)
            est["measured"] = f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine()}"
            if out_root is None and not args.only and not args.stages:  # the committed study's estimate
                from hcs_neuro.core.io import write_json_atomic

                write_json_atomic(ESTIMATE_FILE, est)
            print(f"total: all points {est['all_s'] / 3600:.1f} h, missing points {est['missing_s'] / 3600:.1f} h "
                  f"on one worker ({machine()}); about half with --workers 2 on two free cores")
            if args.json:
                from hcs_neuro.core.io import write_json_atomic

                write_json_atomic(args.json, est)
            return 0
        t0 = time.time()
        notes = [] if args.report_only else run_stages(specs, workers=args.workers, progress=not args.no_progress)
        if not (args.report_only or args.quick or args.no_extra_seeds or out_root is not None):
            notes += _extra_round(specs, only, stages, args)
            specs = stage_specs(args.quick, out_root, only=only, stages=stages)
        from report import write_report

        command = "python analysis/paper/make_paper.py " + " ".join(argv if argv is not None else sys.argv[1:])
        summary = write_report(report_dir, specs, quick=args.quick, command=command.strip(), notes=notes,
                               machine=machine(), wall_s=time.time() - t0,
                               json_path=args.json or report_dir / ("paper_summary.json" if out_root else
                                                                    "paper/paper_summary.json"),
                               estimate_path=None if out_root is not None else ESTIMATE_FILE)
        print(f"wrote {report_dir / 'REPORT.md'}: {summary['n_records']} records, {summary['n_missing']} missing")
        return 0
    except HCSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
