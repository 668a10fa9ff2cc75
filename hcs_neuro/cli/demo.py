"""``hcs-neuro demo``: the main job on the embedded default (the shipped digits model).

For now: evaluate the shipped digits model with the NumPy reference forward pass and print a
results table (and every shipped model's recorded numbers from the manifest). The spiking
pipeline will extend this command.
"""

from __future__ import annotations

__all__ = ["register", "DEFAULT_MODEL"]

#: The embedded default model (models/digits_hcs.npz).
DEFAULT_MODEL = "digits_hcs"


def register(subparsers) -> None:
    """Add the ``demo`` sub-command."""
    p = subparsers.add_parser(
        "demo", help="evaluate the shipped digits model and print the results table",
        description="Evaluate the embedded default model (ternary weights, binary activities, k-WTA) on the "
        "digits test split with the NumPy reference forward pass, and list the shipped models.")
    p.add_argument("--model", default=DEFAULT_MODEL, help="model file or shipped model name (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="evaluate only the first 100 test images")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    p.set_defaults(func=_demo)


def _demo(args) -> int:
    import json
    from importlib.resources import files

    from hcs_neuro.cli.train import format_table, resolve_model_path
    from hcs_neuro.datasets import load_dataset
    from hcs_neuro.model import load_model
    from hcs_neuro.reference import evaluate

    path = resolve_model_path(args.model)
    model = load_model(path)
    dataset = model.metadata.get("dataset", "digits")
    images, labels = load_dataset(dataset, "test")
    if args.quick:
        images, labels = images[:100], labels[:100]
    report = evaluate(model, images, labels)
    md = model.metadata
    print(f"hcs-neuro demo: {path.name} on {dataset} (test split, {report['n_images']} images), "
          f"NumPy reference forward pass")
    print(format_table([
        ("architecture", md.get("architecture", model.architecture.name)),
        ("weight_bits", md.get("weight_bits")), ("act_bits", md.get("act_bits")), ("k", md.get("k")),
        ("learning", md.get("learning")),
        ("test_accuracy", f"{100 * report['accuracy']:.2f} %"),
        ("recorded_accuracy", f"{100 * md['test_accuracy']:.2f} % (at training)" if "test_accuracy" in md else "-"),
        ("zero_weight_fraction", f"{report['zero_weight_fraction']:.3f}"),
        ("active_fraction", ", ".join(f"{l['active_fraction']:.3f}" for l in report["layers"] if "active_fraction" in l)),
        ("macs_per_image", f"{report['macs_per_image']:,}"),
        ("effective_macs_per_image", f"{report['effective_macs_per_image']:,.0f}"),
    ]))
    manifest = files("hcs_neuro.models") / "MANIFEST.json"
    shipped = {}
    if manifest.is_file():
        shipped = json.loads(manifest.read_text()).get("models", {})
        print("\nshipped models (numbers recorded in models/MANIFEST.json):")
        print(f"{'name':<28}{'dataset':<15}{'w_bits':>7}{'a_bits':>7}{'learning':>15}{'test_acc':>10}")
        for name, e in sorted(shipped.items()):
            print(f"{name:<28}{e['dataset']:<15}{str(e['weight_bits']):>7}{str(e['act_bits']):>7}"
                  f"{e['learning']:>15}{100 * e['test_accuracy']:>9.2f}%")
    if args.json:
        from hcs_neuro.atomic import write_json_atomic

        write_json_atomic(args.json, {"model": str(path), "dataset": dataset, "evaluation": report,
                                      "shipped_models": shipped})
    return 0
