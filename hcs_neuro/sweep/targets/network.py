"""The ``network`` sweep target: a trained model simulated as a spiking network, validated and
counted at every point (:func:`hcs_neuro.pipeline.run_network`); one compiled network per model
and worker, reused by its seeds (:data:`hcs_neuro.brian.device.WORKER_CACHE`).
"""

from __future__ import annotations

import itertools
import json
import string
from pathlib import Path

import numpy as np

from hcs_neuro.core.catalog import load_model_reference, model_reference
from hcs_neuro.core.circuit_file import load_race_circuit
from hcs_neuro.core.errors import ConfigError, ModelError
from hcs_neuro.core.metrics import NETWORK_METRICS
from hcs_neuro.pipeline import load_images, run_network
from hcs_neuro.sweep.grid import content_digest
from hcs_neuro.sweep.spec import ParamInfo, Target, parse_parameter, register_target
from hcs_neuro.sweep.worker import worker_scratch_dir

# -- the "network" target: a trained model simulated as a spiking network and validated --------

NETWORK_PARAMETERS: dict[str, ParamInfo] = {
    "model": ParamInfo(kind="str", doc="model .npz path or shipped model name"),
    "n_images": ParamInfo(kind="int", low=1, doc="images per point"),
    "tie_tol": ParamInfo(unit="", low=0.0, high=0.999, doc="near-tie tolerance"),
}
_NETWORK_FIELDS = {"model", "model_template", "dataset", "split", "data_dir", "n_images",
                   "images", "circuit", "chunk", "tie_tol"}


def _template_fields(template: str | None) -> list[str]:
    if not template:
        return []
    return [f for _, f, _, _ in string.Formatter().parse(template) if f]


def _fill_template(template: str, params: dict) -> str:
    """``models/w{weight_bits}_k{k}.npz`` with numbers written ``:g`` (2.0 -> 2, 0.25 -> 0.25)."""
    return template.format(**{n: (f"{v:g}" if isinstance(v, (int, float)) else v)
                               for n, v in params.items()})


def _model_ref(name: str, spec_dir: Path | None) -> tuple[str, str]:
    """(reference usable on the workers, SHA-256 of the file) for a model path or shipped name."""
    try:
        return model_reference(name, spec_dir)
    except ModelError as exc:
        raise ConfigError(str(exc)) from None


def _prepare_network(table: dict, spec_dir: Path | None) -> dict:
    unknown = sorted(set(table) - _NETWORK_FIELDS)
    if unknown:
        raise ConfigError(f"[target] (kind 'network'): unknown field(s) {unknown}; allowed: "
                          f"{sorted(_NETWORK_FIELDS)}")
    cfg = {"dataset": table.get("dataset", "digits"), "split": table.get("split", "test"),
           "data_dir": table.get("data_dir"), "images": table.get("images", "random"),
           "circuit": table.get("circuit"), "chunk": table.get("chunk", 64)}
    if cfg["images"] not in ("random", "first"):
        raise ConfigError(f"[target] images = {cfg['images']!r}; allowed: random (a seeded "
                          "sample per seed), first")
    if not isinstance(cfg["chunk"], int) or cfg["chunk"] < 1:
        raise ConfigError(f"[target] chunk = {cfg['chunk']!r}; must be an integer >= 1")
    if cfg["circuit"] is not None:
        circuit = Path(cfg["circuit"])
        if spec_dir is not None and (circuit.suffix == ".toml" or "/" in cfg["circuit"]) \
                and not circuit.is_absolute():
            cfg["circuit"] = str((spec_dir / circuit).resolve())
        load_race_circuit(cfg["circuit"])  # validates
    models = {}
    template = table.get("model_template")
    if template is not None:
        if not isinstance(template, str) or not _template_fields(template) or "model" in table:
            raise ConfigError(f"[target] model_template = {template!r}: a path with {{fields}} "
                              "filled from swept parameters, e.g. 'models/w{weight_bits}_k{k}.npz' "
                              "(instead of model)")
        cfg["model_template"] = template
    if "model" in table:
        ref, digest = _model_ref(str(table["model"]), spec_dir)
        cfg["model"], models[ref] = ref, digest
    cfg["model_sha256"] = models
    cfg["n_images"] = int(parse_parameter("n_images", table.get("n_images", 100),
                                           NETWORK_PARAMETERS["n_images"],
                                           "[target] n_images").values[0])
    cfg["tie_tol"] = float(table.get("tie_tol", 0.01))
    cfg["spec_dir"] = str(spec_dir) if spec_dir is not None else None
    return cfg


def _check_network(cfg: dict, parameters: tuple) -> None:
    swept = {p.name: p for p in parameters}
    spec_dir = cfg.pop("spec_dir", None)  # only needed here; keeps point hashes path-free
    fields = _template_fields(cfg.get("model_template"))
    if fields:
        missing = [f for f in fields if f not in swept]
        if missing:
            raise ConfigError(f"[target] model_template fields {missing} must be swept in "
                              "[parameters]")

        refs, absent = {}, []
        for combo in itertools.product(*(swept[f].values for f in fields)):
            path = _fill_template(cfg["model_template"], dict(zip(fields, combo)))
            try:
                ref, digest = _model_ref(path, Path(spec_dir) if spec_dir else None)
            except ConfigError:
                absent.append(path)
                continue
            cfg["model_sha256"][ref] = digest
            refs[path] = ref
        if absent:
            raise ConfigError(f"[target] model_template: {len(absent)} model file(s) missing, "
                              f"e.g. {absent[0]!r}; train them first (hcs-neuro train ... --out)")
        cfg["template_refs"] = refs
        return
    if "model" not in swept and "model" not in cfg:
        raise ConfigError("[target] model: required (a model .npz or shipped name), fixed in "
                          "[target] or swept in [parameters]")
    if "model" in swept:  # resolve the listed models now: typos fail before anything runs
        refs = []
        for name in swept["model"].values:
            ref, digest = _model_ref(name, Path(spec_dir) if spec_dir else None)
            cfg["model_sha256"][ref] = digest
            refs.append(ref)
        cfg["model_refs"] = dict(zip(swept["model"].values, refs))


def _evaluate_network(cfg: dict, params: dict, seed: int) -> dict[str, float]:
    from hcs_neuro.brian.device import WORKER_CACHE
    from hcs_neuro.brian.session import SimulationSession

    if cfg.get("model_template"):
        fields = _template_fields(cfg["model_template"])
        path = _fill_template(cfg["model_template"], {f: params[f] for f in fields})
        ref = cfg["template_refs"][path]
    else:
        ref = cfg.get("model_refs", {}).get(params.get("model"), cfg.get("model"))
    n_images = int(params.get("n_images", cfg["n_images"]))
    tie_tol = float(params.get("tie_tol", cfg["tie_tol"]))
    model = load_model_reference(ref)
    images, labels = load_images(model, cfg["dataset"], cfg["split"], cfg["data_dir"])
    n_images = min(n_images, len(images))
    if cfg["images"] == "random":
        pick = np.sort(np.random.default_rng(seed).choice(len(images), n_images, replace=False))
    else:
        pick = np.arange(n_images)
    images, labels = np.ascontiguousarray(images[pick]), labels[pick]
    # one compiled network per (model, circuit, chunk), reused by the next points in this worker
    key = content_digest({"model": ref, "sha": cfg["model_sha256"].get(ref), "circuit": cfg["circuit"],
                          "chunk": cfg["chunk"]})
    session, built = WORKER_CACHE.get(key, lambda: SimulationSession(
        model, circuit=cfg["circuit"], n_jobs=1, chunk=cfg["chunk"], seed=0,
        directory=Path(worker_scratch_dir("network")) / key[:16]))
    try:
        # counts and chip-level energy priced by the Loihi profile (hcs_neuro/data/energy_profiles.toml)
        run = run_network(model, images, labels, session=session, block=len(images), tie_tol=tie_tol,
                          profiles=["loihi"], progress=False)
    except BaseException:
        WORKER_CACHE.evict()
        raise
    result = dict(run.validation)
    result["compile_time_s"] = session.compile_time_s if built else 0.0
    result["spikes_per_image"] = run.energy["totals"]["spikes_per_image"]
    result["sops_per_image"] = run.energy["totals"]["sops_per_image"]
    result["energy_loihi_pj_per_image"] = run.energy["energy"]["loihi"]["per_image_pj"]["total_pj"]
    out = {}
    for m in NETWORK_METRICS:
        value = result.get(m)
        if isinstance(value, (bool, np.bool_)):
            value = float(value)
        out[m] = float("nan") if value is None else float(value)
    return out


def _network_parameters(cfg: dict) -> dict[str, ParamInfo]:
    out = dict(NETWORK_PARAMETERS)
    for name in _template_fields(cfg.get("model_template")):
        out[name] = ParamInfo(unit="", doc="model_template field")
    return out


register_target(Target(
    kind="network",
    evaluate=_evaluate_network,
    prepare=_prepare_network,
    parameters=_network_parameters,
    metrics=lambda cfg: NETWORK_METRICS,
    needs_brian2=lambda cfg: True,
    check=_check_network,
    group_key=lambda cfg, params, seed: json.dumps(
        [params.get(f) for f in _template_fields(cfg.get("model_template"))]
        + [params.get("model", cfg.get("model"))]),
))


