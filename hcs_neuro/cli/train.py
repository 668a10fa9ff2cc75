"""``hcs-neuro train`` and ``hcs-neuro evaluate``: train low-precision HCS networks, report on them.

Heavy imports (PyTorch, scikit-learn) happen inside the handlers.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import sys
from pathlib import Path

from hcs_neuro.cli.args import (
    JSON_SUFFIXES,
    add_json,
    existing_dir,
    float_in,
    int_in,
    output_file,
    seed,
)
from hcs_neuro.core.architecture import load_architecture, with_overrides
from hcs_neuro.core.catalog import model_path
from hcs_neuro.core.datasets import DATASETS, load_dataset
from hcs_neuro.core.errors import ConfigError
from hcs_neuro.core.io import read_json, write_json_atomic
from hcs_neuro.core.model import load_model, save_model
from hcs_neuro.core.quant import check_bits
from hcs_neuro.core.reference import evaluate

__all__ = ["register", "format_table"]


def register(subparsers) -> None:
    """Add the ``train`` and ``evaluate`` sub-commands."""
    p = subparsers.add_parser(
        "train", help="train a low-precision HCS network (PyTorch) and save it as a model .npz",
        description="Train the architecture of --config (a TOML file with [[layers]] and an optional "
        "[training] table) and write integer weight/bias levels to --out. The test accuracy is measured "
        "with the NumPy reference forward pass.")
    p.add_argument("--config", required=True, help="architecture TOML file (see models/configs/)")
    p.add_argument("--dataset", help="digits, fashion-mnist, mnist or idx (default: the config's [training])")
    p.add_argument("--data-dir", type=existing_dir, help="folder with the IDX files (fashion-mnist, mnist, idx)")
    p.add_argument("--weight-bits", type=int, help="1 binary, 2 ternary, ..., 8; 32 = full precision")
    p.add_argument("--act-bits", type=int, help="1 binary activities, 2..8 levels; 32 = full-precision ReLU")
    p.add_argument("--input-bits", type=int, help="input levels 2**B - 1 (1..8); 32 = float input")
    p.add_argument("--k", help="winners per hypercolumn in every HCS layer: a count or a fraction in (0, 1]")
    p.add_argument("--no-hcs", action="store_true", help="turn k-WTA off (plain binarisation / ReLU)")
    p.add_argument("--learning", choices=("probabilistic", "shadow", "naive"),
                   help="probabilistic levels (default), shadow weights + straight-through, or the naive rule")
    p.add_argument("--ste", choices=("window", "winners"), help="straight-through estimator of binary activities")
    p.add_argument("--epochs", type=int_in(1, 100_000))
    p.add_argument("--batch-size", type=int_in(1, 1_000_000))
    p.add_argument("--lr", type=float_in(0, lo_open=True), help="peak step in weight-level units (low precision)")
    p.add_argument("--lr-float", type=float_in(0, lo_open=True), help="Adam learning rate for full-precision weights")
    p.add_argument("--seed", type=seed)
    p.add_argument("--threads", type=int_in(1, 1024), help="PyTorch threads (default: PyTorch's choice)")
    p.add_argument("--train-subset", type=int_in(1), help="train on a seeded random subset of N training images")
    p.add_argument("--teacher", metavar="MODEL",
                   help="distil from MODEL (a .npz file or shipped model name, e.g. fashion_fp32_wide): its logits "
                        "are soft targets (set distill_weight, distill_temp with --set; docs/guide/training.md)")
    p.add_argument("--init", metavar="MODEL",
                   help="warm start from MODEL's weight and bias levels (a .npz file or shipped model name with the "
                        "same layers and weight bits; its activity bits and k may differ): the second stage of a "
                        "two-stage recipe (docs/guide/training.md)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="set any other [training] field, e.g. adam_norm=tensor or beta1=0.99 (repeatable; "
                   "the options above win)")
    p.add_argument("--out", required=True, type=output_file((".npz",)), help="model file to write (.npz)")
    p.add_argument("--manifest", type=output_file(JSON_SUFFIXES),
                   help="JSON manifest to add/update an entry for --out in (e.g. models/MANIFEST.json); "
                   "the entry records the config's path relative to the manifest's folder")
    add_json(p, "write the training report as JSON")
    p.add_argument("--curve", metavar="PATH", type=output_file(JSON_SUFFIXES),
                   help="learning curve: after every epoch, measure the test accuracy "
                   "(PyTorch integer forward pass) and rewrite PATH (JSON) with all epochs so far")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)

    e = subparsers.add_parser(
        "evaluate", help="accuracy, activity sparsity, zero weights and MACs of a model (NumPy reference)",
        description="Run the NumPy reference forward pass of MODEL (a .npz file or the name of a shipped "
        "model, e.g. digits_hcs) on a dataset split and report accuracy, activity sparsity per layer, the "
        "fraction of zero-level weights and MACs.")
    e.add_argument("model", help="model .npz file or shipped model name (see models/MANIFEST.json)")
    e.add_argument("--dataset", help="dataset (default: the one the model was trained on)")
    e.add_argument("--data-dir", type=existing_dir, help="folder with the IDX files")
    e.add_argument("--split", default="test", choices=("train", "test"))
    e.add_argument("--limit", type=int_in(1), help="evaluate only the first N images")
    add_json(e, "write the report as JSON")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    e.set_defaults(func=_evaluate)


def _parse_k(text):
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"--k {text!r}: allowed an integer count or a fraction in (0, 1]") from None


def _command_line(args) -> str:
    parts = ["hcs-neuro", "train"]
    for key in ("config", "dataset", "data_dir", "weight_bits", "act_bits", "input_bits", "k", "learning", "ste",
                "epochs", "batch_size", "lr", "lr_float", "seed", "threads", "train_subset", "teacher", "init", "out"):
        val = getattr(args, key)
        if val is not None:
            parts += [f"--{key.replace('_', '-')}", str(val)]
    if args.no_hcs:
        parts.append("--no-hcs")
    for item in args.overrides:
        parts += ["--set", item]
    return shlex.join(parts)


def _train(args) -> int:
    for field, val in (("weight_bits", args.weight_bits), ("act_bits", args.act_bits),
                       ("input_bits", args.input_bits)):
        if val is not None:
            check_bits(val, field, f"--{field.replace('_', '-')}")
    if args.dataset is not None and args.dataset not in DATASETS:
        raise ConfigError(f"--dataset {args.dataset!r}: allowed {', '.join(DATASETS)}")
    manifest = _read_manifest(args.manifest) if args.manifest else None  # a bad manifest fails before training
    arch = load_architecture(args.config)
    try:
        arch = with_overrides(arch, weight_bits=args.weight_bits, act_bits=args.act_bits, k=_parse_k(args.k),
                              hcs=False if args.no_hcs else None, input_bits=args.input_bits)
    except ConfigError as exc:
        raise ConfigError(f"command-line override on {args.config}: {exc}") from None

    from hcs_neuro.train import (
        curve_recorder,
        load_train_config,
        parse_train_overrides,
        train,
    )

    # --set KEY=VALUE first, the named options (when given) over it; load_train_config skips Nones
    options = parse_train_overrides(args.overrides)
    named = dict(dataset=args.dataset, learning=args.learning, ste=args.ste, epochs=args.epochs,
                 batch_size=args.batch_size, lr=args.lr, lr_float=args.lr_float, seed=args.seed,
                 threads=args.threads, train_subset=args.train_subset, teacher=args.teacher, init=args.init)
    options.update({key: val for key, val in named.items() if val is not None})
    cfg = load_train_config(args.config, **options)
    teacher = None
    if cfg.teacher:  # a shipped name becomes its file; a bad teacher fails before any data are loaded
        from hcs_neuro.train import load_teacher

        cfg = dataclasses.replace(cfg, teacher=str(model_path(cfg.teacher)))
        teacher = load_teacher(cfg.teacher, arch)
    init = None
    if cfg.init:  # likewise for the warm start
        from hcs_neuro.train import load_init

        cfg = dataclasses.replace(cfg, init=str(model_path(cfg.init)))
        init = load_init(cfg.init, arch)
    # load both splits first: a missing dataset fails before any training
    train_data = load_dataset(cfg.dataset, "train", args.data_dir)
    test_data = load_dataset(cfg.dataset, "test", args.data_dir)
    on_epoch = curve_recorder(args.curve, test_data, cfg) if args.curve else None
    model, report = train(arch, cfg, progress=not args.quiet, command=_command_line(args),
                          train_data=train_data, test_data=test_data, on_epoch=on_epoch, teacher=teacher,
                          init=init)
    save_model(model, args.out)
    if args.manifest:
        _update_manifest(args.manifest, manifest, args.out, args.config, report)
    print(format_table([("dataset", report["dataset"]), ("architecture", report["architecture"]),
                        ("learning", report["learning"]), ("weight_bits", report["weight_bits"]),
                        ("act_bits", report["act_bits"]), ("k", report["k"]), ("epochs", report["epochs"]),
                        ("seed", report["seed"]), ("train_images_per_s", f"{report['train_images_per_s']:.0f}"),
                        ("test_accuracy", f"{100 * report['test_accuracy']:.2f} %"),
                        ("zero_weight_fraction", f"{report['zero_weight_fraction']:.3f}"),
                        ("model", args.out)]))
    if args.json:
        write_json_atomic(args.json, report)
    return 0


def _read_manifest(path) -> dict:
    """The manifest at ``path`` (a new one if the file does not exist yet); a file that is not a
    manifest (``{"models": {...}}``) is refused, naming it."""

    if not Path(path).exists():
        return {"models": {}}
    data = read_json(path, what="manifest")
    if not isinstance(data.get("models", {}), dict):
        raise ConfigError(f"{path}: the manifest's 'models' must be an object of model entries")
    return data


def _update_manifest(manifest, data, out, config, report):
    path = Path(manifest)
    rel_config = _manifest_relative(config, path)
    entry = {key: report[key] for key in ("dataset", "architecture", "learning", "weight_bits", "act_bits",
                                           "input_bits", "k", "hcs", "seed", "epochs", "test_accuracy",
                                           "zero_weight_fraction", "command", "train_images_per_s", "train_time_s",
                                           "n_train")}
    entry.update(file=Path(out).name, config=rel_config, n_test=report["n_test"])
    init = (report.get("training") or {}).get("init")
    if init:  # a warm-started model: the file it started from, as the config (relative to the manifest)
        entry["init"] = _manifest_relative(init, path)
    data.setdefault("models", {})[Path(out).stem] = entry
    write_json_atomic(path, data)


def _manifest_relative(file, manifest) -> str:
    """``file``'s path relative to the folder of ``manifest``, with ``/`` separators, so that a manifest
    entry resolves from the manifest wherever the command that wrote it ran (``../docs/x.toml`` for a
    file outside ``models/``); the absolute path where no relative one exists (another drive)."""

    target = Path(file).resolve()
    try:
        return Path(os.path.relpath(target, Path(manifest).resolve().parent)).as_posix()
    except ValueError:
        return target.as_posix()


def format_table(rows) -> str:
    """Two-column text table."""
    width = max(len(str(k)) for k, _ in rows)
    return "\n".join(f"{str(k):<{width}}  {v}" for k, v in rows)


def _evaluate(args) -> int:
    path = model_path(args.model)
    model = load_model(path)
    dataset = args.dataset or model.metadata.get("dataset")
    if not dataset:
        raise ConfigError(f"{path}: the model does not record its dataset; pass --dataset")
    images, labels = load_dataset(dataset, args.split, args.data_dir, limit=args.limit)
    arch = model.architecture
    if tuple(images.shape[1:]) != tuple(arch.input_shape):
        raise ConfigError(f"dataset {dataset!r} has images of shape {tuple(images.shape[1:])} but {path} takes "
                          f"{tuple(arch.input_shape)}; pass the --dataset the model was trained on")
    if int(labels.max()) >= arch.n_classes:
        raise ConfigError(f"dataset {dataset!r} has labels up to {int(labels.max())} but {path} has "
                          f"{arch.n_classes} classes")
    report = evaluate(model, images, labels, progress=not args.quiet)
    report.update(model=str(path), dataset=dataset, split=args.split)
    rows = [("model", str(path)), ("dataset", f"{dataset} ({args.split}, {report['n_images']} images)"),
            ("accuracy", f"{100 * report['accuracy']:.2f} %"),
            ("zero_weight_fraction", f"{report['zero_weight_fraction']:.3f}"),
            ("macs_per_image", f"{report['macs_per_image']:,}"),
            ("effective_macs_per_image", f"{report['effective_macs_per_image']:,.0f}")]
    print(format_table(rows))
    print()
    print(f"{'layer':<14}{'k':>5}{'active_fraction':>17}{'active/hcol':>13}{'zero_w':>8}{'w/chan':>8}{'ops/image':>12}")
    for l in report["layers"]:
        act = l.get("active_fraction")
        per = l.get("active_per_hypercolumn")
        zw = l.get("zero_weight_fraction")
        wc = l.get("weight_values_per_channel")
        ops = l.get("macs_per_image", l.get("adds_per_image"))
        print(f"{str(l['index']) + ' ' + l['type']:<14}{str(l['k'] or '-'):>5}"
              f"{'-' if act is None else f'{act:.3f}':>17}{'-' if per is None else f'{per:.2f}':>13}"
              f"{'-' if zw is None else f'{zw:.3f}':>8}{'-' if wc is None else wc:>8}{ops:>12,}")
    if args.json:
        write_json_atomic(args.json, report)
    return 0


if __name__ == "__main__":  # pragma: no cover
    from hcs_neuro.cli import main

    sys.exit(main(["train", *sys.argv[1:]]))
