"""The manifest's commands are the shipped models' recipes, checked without retraining.

Every ``command`` in ``models/MANIFEST.json`` parses with the real ``hcs-neuro`` parser, names no
temporary path, sets nothing but its config, where to run it and where to write the model (no
recipe flags), and names files that exist. The config it names holds the recipe that made the
model: its architecture equals the one stored in the model file, dict for dict, and its
``[training]`` table, as the command loads it, equals the ``training`` table recorded in the
model's metadata, field by field.

Fields that may legitimately differ between the config and the recorded table
(:data:`DIFFERS`):

- ``init`` (the two-stage model): the config names the stage-1 model by its shipped name, which
  resolves wherever hcs-neuro is installed; the model file recorded the path given on the command
  line that made it (``models/fashion_hcs_ternary_wide_act2.npz``, from the repository root).
  Compared as files: the same bytes.

``threads`` is not an exception: it is on each command (``--threads N``, as the model was made),
not in the configs, and the table loaded as the command loads it must match the record.
Fields that a model's metadata does not record (added to the training code after the model was
made) must be at their default in the config: the code that made the model had only the default
behaviour.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import tempfile
from pathlib import Path

import pytest

from hcs_neuro.cli import build_parser
from hcs_neuro.core.architecture import load_architecture
from hcs_neuro.core.catalog import model_path
from hcs_neuro.core.model import load_model
from hcs_neuro.train import TrainConfig, load_train_config, parse_train_overrides

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "models"
CONFIGS = MODELS / "configs"
MANIFEST = json.loads((MODELS / "MANIFEST.json").read_text())["models"]

#: The options a manifest command may set besides --config and --out: how to run (PyTorch threads,
#: recorded as the model was made) and the warm start of a two-stage recipe. Every other option of
#: ``hcs-neuro train`` must stay at its default: the recipe is in the config file.
COMMAND_OPTIONS = {"config", "out", "threads", "init"}

#: [training] fields that may differ between a config and the model's record, and how they compare.
DIFFERS = {"init": "the same model file (the config names it by its shipped name, the record by its path)"}

#: Configs in models/configs/ that train no shipped model (each says so in its first line).
NOT_A_MODEL = {"fashion_short_budget.toml"}

_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}


def _parse(command: str):
    argv = shlex.split(command)
    assert argv[:2] == ["hcs-neuro", "train"], command
    return build_parser().parse_args(argv[1:])


def _train_config(args) -> TrainConfig:
    """The training config that ``hcs-neuro train`` builds from ``args`` (as hcs_neuro.cli.train does:
    --set first, the named options over it, the file's [training] table under both)."""
    options = parse_train_overrides(args.overrides)
    named = dict(dataset=args.dataset, learning=args.learning, ste=args.ste, epochs=args.epochs,
                 batch_size=args.batch_size, lr=args.lr, lr_float=args.lr_float, seed=args.seed,
                 threads=args.threads, train_subset=args.train_subset, teacher=args.teacher, init=args.init)
    options.update({key: val for key, val in named.items() if val is not None})
    return load_train_config(args.config, **options)


def _same_file(a, b) -> bool:
    return Path(a).read_bytes() == Path(b).read_bytes()


@pytest.fixture
def in_repo(monkeypatch):
    """Manifest commands run from the repository root."""
    monkeypatch.chdir(REPO)


def test_every_command_is_plain_and_names_no_temporary_path():
    tmp = tempfile.gettempdir()
    for name, entry in MANIFEST.items():
        command = entry["command"]
        assert "/tmp" not in command and tmp not in command, (name, command)
        assert "--set" not in shlex.split(command), (name, command)


def test_every_config_trains_a_shipped_model_or_says_it_does_not():
    used = [(MODELS / entry["config"]).resolve() for entry in MANIFEST.values()]
    assert len(set(used)) == len(used), "two models share a config: one config per model"
    present = {p.resolve() for p in CONFIGS.glob("*.toml")}
    assert set(used) <= present
    assert {p.name for p in present - set(used)} == NOT_A_MODEL
    for name in NOT_A_MODEL:
        assert (CONFIGS / name).read_text().startswith("# TRAINS NO SHIPPED MODEL."), name


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_command_parses_and_names_existing_files(name, in_repo):
    entry = MANIFEST[name]
    args = _parse(entry["command"])
    baseline = _parse("hcs-neuro train --config c.toml --out models/x.npz")
    changed = {key for key, val in vars(args).items() if val != vars(baseline)[key]}
    assert changed <= COMMAND_OPTIONS, f"{name}: recipe flags on the command line: {sorted(changed - COMMAND_OPTIONS)}"
    # the model goes where the manifest says, the config is the manifest's, inside models/configs/
    assert args.out == f"models/{name}.npz" and entry["file"] == f"{name}.npz"
    assert (REPO / args.out).is_file()
    config = (REPO / args.config).resolve()
    assert config.is_file() and config.parent == CONFIGS.resolve()
    assert (MODELS / entry["config"]).resolve() == config
    if args.init is not None:
        assert model_path(args.init).is_file()


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_config_holds_the_recipe_that_made_the_model(name, in_repo):
    entry = MANIFEST[name]
    args = _parse(entry["command"])
    model = load_model(MODELS / entry["file"])

    # architecture: exactly the one stored in the model file (no command-line overrides remain,
    # test_command_parses_and_names_existing_files)
    arch = load_architecture(args.config)
    assert arch.to_dict() == model.architecture.to_dict()
    assert entry["architecture"] == arch.name

    # [training]: field by field as recorded in the model file
    cfg = _train_config(args)
    recorded = model.metadata["training"]
    assert set(recorded) <= set(_DEFAULTS), sorted(set(recorded) - set(_DEFAULTS))
    for field, value in recorded.items():
        ours = getattr(cfg, field)
        if field == "init" and value:
            assert ours, f"{name}: the model was warm-started from {value}; the config names no init"
            assert _same_file(model_path(ours), REPO / value), (name, ours, value)
            continue
        assert json.dumps(ours) == json.dumps(value), f"{name}: [training] {field} = {ours!r}, the model recorded {value!r}"
    for field in set(_DEFAULTS) - set(recorded):  # newer than the model: must be the default
        assert getattr(cfg, field) == _DEFAULTS[field], f"{name}: [training] {field} is not recorded in the model"
    assert set(DIFFERS) <= set(_DEFAULTS)

    # the manifest's summary fields agree with the recipe
    assert (entry["dataset"], entry["epochs"], entry["seed"]) == (cfg.dataset, cfg.epochs, cfg.seed)
    if cfg.init:
        assert "init" in entry and _same_file(MODELS / entry["init"], model_path(cfg.init))
    else:
        assert "init" not in entry
