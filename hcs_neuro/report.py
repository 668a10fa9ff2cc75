"""Reports of spiking-network runs: the one-page validation report folder, the energy folder, and
the text tables the command line prints.

Layout of the folder (``write_report``)::

    report.md          summary, per-layer agreement and cost tables, figures, run metadata
    validation.json    the validation dict (hcs_neuro.measure.validate.validate), as given
    energy.json        the energy dict (hcs_neuro.measure.energy.network_energy), as given
    raster.png         spike raster of one image, all layers
    agreement_L<i>.png strict winner agreement per location, layer i (reference layer applied
                       to the spiking layer i-1 output: conditional agreement)
    latency.png        decision latency histogram
    sops.png           synaptic operations per layer, simulated vs analytic vs reference ops
    energy.png         energy per layer and profile (chip level)
    psychometric.png   conditional strict agreement against the margin between the k-th and
                       (k+1)-th drive, per layer (if the validation dict carries the tables)

The energy folder (``write_energy_report``) holds ``energy.json``, ``energy.md`` (the printed
table), ``energy.png`` and ``sops.png``. Figures are drawn on :class:`matplotlib.figure.Figure`
objects (no pyplot state, any backend).
"""

from __future__ import annotations

import io
import math
import numbers
import sys
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from hcs_neuro.core.io import atomic_dir, write_json_atomic
from hcs_neuro.core.reference import layer_forward, spiking_output
from hcs_neuro.plotting.network import (
    figure_profiles,
    layer_label,
    plot_agreement_map,
    plot_energy_bars,
    plot_latency_histogram,
    plot_psychometric_layers,
    plot_raster,
    plot_sop_bars,
)

__all__ = ["write_report", "write_energy_report", "print_validation", "print_energy", "conditional_reference_winners",
           "energy_tables", "count_basis_lines",
           "REPORT_NAME", "REPORT_KIND", "ENERGY_KIND"]

#: File name of the Markdown page inside the report folder.
REPORT_NAME = "report.md"
#: Kind recorded in a report folder's marker (``--overwrite`` replaces only folders of this kind).
REPORT_KIND = "report"
#: Kind recorded in the marker of an energy folder (``hcs-neuro energy --out``).
ENERGY_KIND = "energy"


def conditional_reference_winners(model, reference, spiking, i: int) -> np.ndarray:
    """Reference winners of layer ``i`` given the *spiking* output of layer ``i - 1``
    (:func:`hcs_neuro.core.reference.conditional_layer`). Layer 0 sees the same quantized input in
    both networks, so its reference winners are returned as they are."""
    drive = np.asarray(reference.layers[0].drive)
    winners = np.asarray(reference.layers[0].winners, dtype=bool)
    for j in range(1, i + 1):
        x = spiking_output(model, j - 1, drive, np.asarray(spiking.layers[j - 1].winners, dtype=bool))
        drive, winners, _ = layer_forward(model, j, x)
        winners = np.asarray(winners, dtype=bool) if winners is not None else None
    return winners


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, numbers.Integral):
        return f"{int(v):,}"
    if isinstance(v, numbers.Real):
        v = float(v)
        if math.isnan(v):
            return "nan"
        if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
            return f"{v:.3e}"
        if abs(v) >= 100:
            return f"{v:,.1f}"
        return f"{v:.4g}"
    return str(v)


def _pct(v) -> str:
    return "–" if v is None else f"{100.0 * float(v):.2f} %"


def _table(header: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    out += ["| " + " | ".join(_fmt(c) if not isinstance(c, str) else c for c in row) + " |" for row in rows]
    return "\n".join(out)


def _scalars(d: dict, prefix: str = "") -> list[tuple[str, object]]:
    """Flatten the scalar leaves of a nested dict (lists of numbers and of dicts are skipped)."""
    out = []
    for key in sorted(d):
        v = d[key]
        name = f"{prefix}{key}"
        if isinstance(v, dict):
            out += _scalars(v, name + ".")
        elif v is None or isinstance(v, (numbers.Number, str, bool)):
            out.append((name, v))
    return out


def _psychometric_layers(validation: dict) -> list[dict]:
    """Per-layer psychometric tables of the validation dict (``layers[i]["psychometric_*"]``)."""
    out = []
    for l in validation.get("layers", []) or []:
        if isinstance(l, dict) and "psychometric_count" in l and "psychometric_agreement_strict" in l:
            out.append(l)
    return out


def _layer_rows(validation: dict) -> list[dict] | None:
    layers = validation.get("layers")
    if isinstance(layers, list) and layers and all(isinstance(l, dict) for l in layers):
        return layers
    return None


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path.name


def write_report(out_dir, *, model, reference, spiking, validation: dict, energy: dict,
                 title: str | None = None, image: int = 0, overwrite: bool = False) -> Path:
    """Write the one-page report folder and return the path of its ``report.md``.

    Parameters
    ----------
    out_dir : str or Path
        The report folder. It is written under a temporary name and renamed when complete, so
        an error leaves no partial report (an existing folder is replaced only on success).
    model : hcs_neuro.core.model.Model
    reference : hcs_neuro.core.reference.ReferenceResult
        Reference forward pass of the same images (``keep_layers=True``).
    spiking : hcs_neuro.core.spiking_result.SpikingResult
    validation : dict
        From :func:`hcs_neuro.measure.validate.validate`; rendered as given (known keys in the summary,
        every scalar in the appendix).
    energy : dict
        From :func:`hcs_neuro.measure.energy.network_energy`.
    title : str, optional
    image : int
        Image shown in the spike raster.
    overwrite : bool
        Replace an existing report folder that hcs-neuro wrote (never a folder holding anything
        else; see :func:`hcs_neuro.core.io.atomic_dir`).

    Returns
    -------
    Path
        ``out_dir / "report.md"``.
    """
    out_dir = Path(out_dir)
    arch = model.architecture
    title = title or f"Spiking network report: {arch.name}"
    meta = dict(spiking.metadata or {})
    with atomic_dir(out_dir, overwrite=overwrite, kind=REPORT_KIND) as tmp:
        figs = {}
        fig = Figure(figsize=(7.5, 5.0))
        plot_raster(spiking, image=min(image, spiking.n_images - 1),
                    layer_types=[l.type for l in arch.layers], ax=fig.add_subplot())
        figs["raster"] = _save(fig, tmp / "raster.png")
        agree_figs = []
        for i, spec in enumerate(arch.layers):
            if spec.is_readout:
                continue
            cond = conditional_reference_winners(model, reference, spiking, i)
            fig = Figure(figsize=(5.0, 4.0))
            plot_agreement_map(cond, spiking.layers[i].winners, ax=fig.add_subplot(),
                               title=f"{layer_label(i, spec.type, spec.out_shape)}: conditional strict "
                                     f"agreement per location")
            agree_figs.append(_save(fig, tmp / f"agreement_L{i}.png"))
        fig = Figure(figsize=(6.0, 4.0))
        plot_latency_histogram(spiking.decision_latency_ms, ax=fig.add_subplot())
        figs["latency"] = _save(fig, tmp / "latency.png")
        fig = Figure(figsize=(7.5, 4.0))
        plot_sop_bars(energy, ax=fig.add_subplot())
        figs["sops"] = _save(fig, tmp / "sops.png")
        fig = Figure(figsize=(7.5, 4.0))
        plot_energy_bars(energy, profiles=figure_profiles(energy), ax=fig.add_subplot())
        figs["energy"] = _save(fig, tmp / "energy.png")
        psy = _psychometric_layers(validation)
        if psy:
            fig = Figure(figsize=(6.5, 4.0))
            plot_psychometric_layers(psy, ax=fig.add_subplot())
            figs["psychometric"] = _save(fig, tmp / "psychometric.png")
        write_json_atomic(tmp / "validation.json", validation)
        write_json_atomic(tmp / "energy.json", energy)
        text = _markdown(title, model, spiking, validation, energy, figs, agree_figs, meta, image)
        (tmp / REPORT_NAME).write_text(text)
    return out_dir / REPORT_NAME


def _markdown(title, model, spiking, validation, energy, figs, agree_figs, meta, image) -> str:
    arch = model.architecture
    v = validation
    lines = [f"# {title}", ""]
    n_val = v.get("n_images")
    n_spk = spiking.n_images
    scope = (f"{n_spk} images" if n_val in (None, n_spk) else
             f"validation over {n_val:,} images; spike raster, agreement maps and the SOP/energy tables from "
             f"the first {n_spk:,} of them")
    lines.append(f"Model `{arch.name}` ({arch.source}); {scope}; dt = {spiking.dt_ms:g} ms, "
                 f"window = {spiking.window_ms:g} ms per image; simulation wall time {spiking.wall_time_s:.1f} s "
                 f"(build + compile + run{'' if n_val in (None, n_spk) else ', first block'}).")
    if meta:
        lines.append("Run: " + ", ".join(f"{k} = `{_fmt(meta[k])}`" for k in sorted(meta)
                                         if isinstance(meta[k], (str, int, float, bool))) + ".")
    lines += ["", "## Summary", ""]
    rows = []
    for key, label in (("class_agreement", "class agreement (spiking class = reference class)"),
                       ("spiking_accuracy", "spiking accuracy"), ("reference_accuracy", "reference accuracy")):
        if key in v:
            rows.append([label, _pct(v[key])])
    for key in sorted(v):
        val = v[key]
        if key.startswith("latency") and isinstance(val, (int, float)) or key.endswith("_ms") and isinstance(val, (int, float)):
            rows.append([key, _fmt(val)])
    if isinstance(v.get("latency_ms"), dict):
        for k2, val in v["latency_ms"].items():
            if isinstance(val, (int, float)):
                rows.append([f"latency_ms.{k2}", _fmt(val)])
    for key in ("spikes_per_neuron_per_image", "n_images"):
        if key in v and not isinstance(v[key], (dict, list)):
            rows.append([key, _fmt(v[key])])
    t = energy["totals"]
    rows += [["spikes per image (input + excitatory + interneurons)", _fmt(t.get("spikes_per_image"))],
             ["SOPs per image (feed-forward + circuit)", _fmt(t.get("sops_per_image"))],
             ["SOPs per image, analytic from reference activity (feed-forward)", _fmt(t.get("sops_analytic_per_image"))],
             ["dense MACs + adds per image (reference)", _fmt(t.get("dense_ops_per_image"))],
             ["effective ops per image (reference, zeros skipped)", _fmt(t.get("effective_ops_per_image"))]]
    sc = energy.get("sop_check")
    if sc:
        rows.append(["SOP cross-check: simulated = analytic wherever a layer's winners agree",
                     f"{'yes' if sc['sops_equal_where_winners_agree'] else 'NO'} "
                     f"({sc['n_sop_mismatches_where_winners_agree']} mismatches in "
                     f"{sc['n_image_layers_winners_agree']:,} agreeing image-layers)"])
    lines.append(_table(["quantity", "value"], rows))
    layer_rows = _layer_rows(v)
    if layer_rows:
        lines += ["", "## Per-layer agreement (conditional: reference layer applied to the spiking "
                      "previous layer)", ""]
        keys = [k for k in layer_rows[0] if not isinstance(layer_rows[0][k], (list, dict))]
        lines.append(_table(keys, [[r.get(k) for k in keys] for r in layer_rows]))
    lines += ["", "## Spikes, synaptic operations and energy per layer (means per image)", ""]
    hdr = ["layer", "units", "synapses in", "spikes", "interneuron spikes", "SOPs in (sim)", "SOPs in (analytic)",
           "circuit SOPs", "neuron updates", "dense ops", "effective ops"]
    rows = []
    for l in energy["layers"]:
        rows.append([f"L{l['index']} {l['type']}", l["n_units"], l["n_synapses_in"], l.get("spikes_per_image"),
                     l.get("interneuron_spikes_per_image"), l.get("sops_in_per_image"),
                     l.get("sops_in_analytic_per_image"), l.get("sops_circuit_per_image"),
                     l.get("neuron_updates_per_image"), l["dense_ops_per_image"], l.get("effective_ops_per_image")])
    lines.append(_table(hdr, rows))
    lines += ["", "### How each count was obtained", ""]
    lines += [f"- {line}" for line in count_basis_lines(energy)] or ["- (no simulation)"]
    lines += ["", "### Energy per image, with and without data movement", "",
              "Same model for both sides: compute from each profile's figures, data movement (memory accesses) "
              f"priced from one table ({energy['memory']['citation']}) and added only where a profile's figures "
              "exclude memory. The comparison and break-even below are against the reference at its own precision "
              f"(`{energy.get('reference_profile_own_precision')}`).", "", "```"]
    lines += energy_tables(energy)
    lines += ["```", ""]
    rows = [[name, e["kind"], e.get("scope", ""), ", ".join(e.get("includes", [])),
             ", ".join(e.get("unpriced", [])) or "–", e["citation"]] for name, e in energy["energy"].items()]
    lines.append(_table(["profile", "kind", "scope", "figures include", "unpriced", "source"], rows))
    lines += ["", "Neuron updates are priced per neuron update as counted or computed (see above); under the clock "
                  "policy their number grows with the number of steps each layer is simulated per image (the race "
                  "window), not with the task."]
    lines += ["", "## Figures", ""]
    lines.append(f"![spike raster, image {image}](raster.png)")
    lines.append("")
    lines.append("![decision latency](latency.png)")
    lines.append("")
    lines.append("![synaptic operations per layer](sops.png) ![energy per layer](energy.png)")
    if "psychometric" in figs:
        lines += ["", "![agreement against margin](psychometric.png)"]
    if agree_figs:
        lines += ["", " ".join(f"![{p}]({p})" for p in agree_figs)]
    lines += ["", "## All validation numbers", ""]
    lines.append(_table(["key", "value"], [[k, val] for k, val in _scalars(v)]))
    lines += ["", "Full numbers: `validation.json`, `energy.json` in this folder.", ""]
    return "\n".join(lines)


def print_validation(m: dict, file=None) -> None:
    """Human-readable summary of a validation (:func:`hcs_neuro.pipeline.run_network`'s metrics)."""
    out = file or sys.stdout

    def pct(v):
        return "n/a" if v is None else f"{100 * v:.2f} %"

    def ms(v):  # 18.4, not the float sum's 18.400000000000002
        return "n/a" if v is None else f"{v:g}"

    print(f"validated {m['n_images']} images (circuit {m.get('circuit')}, dt {ms(m.get('dt_ms'))} ms, "
          f"window {ms(m.get('window_ms'))} ms per image, tie_tol {m['tie_tol']:g} of each drive range)", file=out)
    print(f"class agreement {pct(m['class_agreement'])}; spiking accuracy {pct(m['spiking_accuracy'])} "
          f"(reference {pct(m['reference_accuracy'])}); undecided {pct(m['undecided_fraction'])}", file=out)
    print(f"{'layer':<12}{'k':>5}{'cond. strict':>14}{'cond. tol.':>12}{'spikes/neuron':>15}{'SOP check':>12}",
          file=out)
    for l in m["layers"]:
        sop = f"{l['sop_check_equal']}/{l['sop_check_images']}" if l["type"] != "linear" else "-"
        print(f"{'L%d %s' % (l['index'], l['type']):<12}{l['k']:>5}{pct(l['conditional_agreement_strict']):>14}"
              f"{pct(l['conditional_agreement_tie_tolerant']):>12}{l['spikes_per_neuron_per_image']:>15.3f}{sop:>12}",
              file=out)
    if m.get("latency_ms_median") is not None:
        print(f"decision latency (ms from stimulus onset): median {m['latency_ms_median']:.2f}, "
              f"p95 {m['latency_ms_p95']:.2f}, max {m['latency_ms_max']:.2f}", file=out)
    print(f"spikes per neuron per image {m['spikes_per_neuron_per_image']:.3f}; simulation {m['wall_time_s']:.1f} s "
          f"({m['images_per_s']:.1f} images/s), compile {m.get('compile_time_s', 0):.1f} s", file=out)


def _uj(pj) -> str:
    return "-" if pj is None else f"{pj * 1e-6:.4g}"


def _x(v) -> str:
    return "-" if v is None else f"{v:.3g}"


def count_basis_lines(e: dict) -> list[str]:
    """One line per simulation count: counted or computed, and how (``e["count_basis"]``)."""
    table = e.get("count_basis") or {}
    names = (("input.spikes_per_image", "input spikes"), ("input.sops_per_image", "input SOPs"),
             ("layers.spikes_per_image", "spikes"), ("layers.interneuron_spikes_per_image", "interneuron spikes"),
             ("layers.sops_out_per_image", "SOPs"), ("layers.sops_circuit_per_image", "k-WTA circuit SOPs"),
             ("layers.neuron_updates_per_image", "neuron updates"))
    out = []
    for key, label in names:
        b = table.get(key)
        if b:
            policy = f", {b['policy']} policy" if b.get("policy") else ""
            out.append(f"{label}: {b['basis']} ({b['how']}{policy})")
    return out


def energy_tables(e: dict) -> list[str]:
    """The energy lines of :func:`print_energy`: every profile with and without data movement, the
    comparison with the reference under one model, and the break-even activity."""
    lines = [f"energy per image in uJ ({e['note']})",
             f"data movement: {e['memory']['rule']}; {e['memory']['citation']}",
             f"{'profile':<17}{'kind':<11}{'scope':<15}{'figures include':<32}{'no data mvt':>12}{'with data mvt':>14}"]
    unpriced = []
    for name, p in e["energy"].items():
        inc = "+".join(p.get("includes", []))
        if p.get("unpriced"):
            inc += " *"
            unpriced.append(f"* {name}: no figure for {', '.join(p['unpriced'])} (priced 0: a lower bound)")
        if p["kind"] == "spiking":
            t = p["totals_pj"]
            inside = p["data_movement_pj"] is None
            lines.append(f"{name:<17}{'spiking':<11}{p['scope']:<15}{inc:<32}"
                         f"{'(inside)' if inside else _uj(t['without_data_movement_pj']):>12}"
                         f"{_uj(t['with_data_movement_pj']):>14}")
        else:
            t = p["totals_pj"]
            lines.append(f"{name:<17}{'reference':<11}{'dense':<15}{inc:<32}"
                         f"{_uj(t['dense_without_data_movement_pj']):>12}{_uj(t['dense_with_data_movement_pj']):>14}")
            lines.append(f"{'':<17}{'':<11}{'sparse bound':<15}{'zeros skipped, max reuse':<32}"
                         f"{_uj(t['sparse_without_data_movement_pj']):>12}{_uj(t['sparse_with_data_movement_pj']):>14}")
    lines += unpriced
    c = e.get("comparison")
    if c:
        lines.append(f"SNN / reference at its own precision ({c['reference_profile']}), one model ({c['ratio']}):")
        lines.append(f"{'profile':<17}{'no data mvt, dense':>20}{'with, dense':>14}{'with, sparse bound':>20}")
        for r in c["rows"]:
            lines.append(f"{r['profile']:<17}{_x(r['ratio_without_data_movement']):>20}"
                         f"{_x(r['ratio_with_data_movement']):>14}{_x(r['ratio_with_data_movement_vs_sparse']):>20}")
    be = e.get("break_even")
    if be:
        lines.append(f"break-even activity a* ({be['activity']}; measured a0 = {be['measured_activity']:.4g}, "
                     f"{be['activity_counts']} counts; {be['formula']}; '-': none, the part that does not scale "
                     f"with activity alone costs more):")
        lines.append(f"{'profile':<17}{'data mvt':<10}{'reference':<11}{'a*':>9}{'k/C at a*':>11}"
                     f"{'a*, no step updates':>21}{'k/C at it':>11}")
        for r in be["rows"]:
            lines.append(f"{r['profile']:<17}{'with' if r['data_movement'] else 'without':<10}{r['reference']:<11}"
                         f"{_x(r['a_star']):>9}{_x(r['k_over_c_conv']):>11}"
                         f"{_x(r['a_star_without_step_updates']):>21}{_x(r['k_over_c_conv_without_step_updates']):>11}")
    return lines


def print_energy(e: dict, file=None) -> None:
    """Print the per-layer table, totals, SOP check, count basis, the energy per profile with and
    without data movement, the comparison with the reference and the break-even activity (of
    :func:`hcs_neuro.measure.energy.network_energy`)."""
    out = file or sys.stdout

    def f(v, width=11):
        if v is None:
            return "-".rjust(width)
        return (f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}").rjust(width)

    sim = e["has_spiking"]
    print(f"energy: {e['model']}, {e['n_images']} images, "
          f"{'counts from a simulation (counted or computed: see below)' if sim else 'analytic counts (no simulation)'};"
          f" means per image", file=out)
    hdr = (f"{'layer':<12}{'spikes':>11}{'inh spikes':>11}{'SOPs in':>11}{'SOPs an.':>11}{'circ SOPs':>11}"
           f"{'updates':>11}{'dense ops':>11}{'eff. ops':>11}")
    print(hdr, file=out)
    inp = e["input"]
    print(f"{'input':<12}{f(inp['spikes_per_image'] if sim else inp['spikes_analytic_per_image'])}"
          f"{f(None)}{f(None)}{f(None)}{f(None)}{f(None)}{f(None)}{f(None)}", file=out)
    for l in e["layers"]:
        spikes = l["spikes_per_image"] if sim else l["spikes_analytic_per_image"]
        print(f"{'L%d %s' % (l['index'], l['type']):<12}{f(spikes)}{f(l['interneuron_spikes_per_image'])}"
              f"{f(l['sops_in_per_image'])}{f(l['sops_in_analytic_per_image'])}{f(l['sops_circuit_per_image'])}"
              f"{f(l['neuron_updates_per_image'])}{f(l['dense_ops_per_image'])}{f(l['effective_ops_per_image'])}",
              file=out)
    t = e["totals"]
    if sim:
        print(f"total: {t['spikes_per_image']:,.1f} spikes, {t['sops_per_image']:,.1f} SOPs "
              f"({t['sops_feedforward_per_image']:,.1f} feed-forward + {t['sops_circuit_per_image']:,.1f} circuit), "
              f"{t['neuron_updates_per_image']:,.0f} neuron updates per image", file=out)
        sc = e["sop_check"]
        print(f"SOP check: simulation = analytic wherever a layer's winners agree: "
              f"{'yes' if sc['sops_equal_where_winners_agree'] else 'NO'} "
              f"({sc['n_sop_mismatches_where_winners_agree']} mismatches in {sc['n_image_layers_winners_agree']:,} "
              f"agreeing image-layers; {sc['n_recount_mismatches']} recount mismatches)", file=out)
        for line in count_basis_lines(e):
            print(f"  {line}", file=out)
    print(f"reference: {t['dense_ops_per_image']:,.0f} dense ops ({t['dense_macs_per_image']:,.0f} MACs + "
          f"{t['dense_adds_per_image']:,.0f} adds), {t['effective_ops_per_image'] or 0:,.1f} effective ops per image; "
          f"own precision {e['reference_profile_own_precision']}, spiking side {e['snn_profile_own_precision']}",
          file=out)
    for line in energy_tables(e):
        print(line, file=out)


def write_energy_report(out_dir, e: dict, *, overwrite: bool = False) -> Path:
    """Write ``energy.json``, ``energy.md`` (the printed table), ``energy.png`` and ``sops.png``
    into ``out_dir`` atomically; return the folder."""
    out_dir = Path(out_dir)
    with atomic_dir(out_dir, overwrite=overwrite, kind=ENERGY_KIND) as tmp:
        write_json_atomic(tmp / "energy.json", e)
        buf = io.StringIO()
        print_energy(e, file=buf)
        (tmp / "energy.md").write_text(f"# Energy: {e['model']}\n\n```\n{buf.getvalue()}```\n\n"
                                       "![energy per layer](energy.png)\n\n![SOPs per layer](sops.png)\n")
        fig = Figure(figsize=(7.5, 4.0))
        plot_energy_bars(e, profiles=figure_profiles(e), ax=fig.add_subplot())
        fig.tight_layout()
        fig.savefig(tmp / "energy.png", dpi=110)
        fig = Figure(figsize=(7.5, 4.0))
        plot_sop_bars(e, ax=fig.add_subplot())
        fig.tight_layout()
        fig.savefig(tmp / "sops.png", dpi=110)
    return out_dir
