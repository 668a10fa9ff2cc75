"""Write REPORT.md, its figures and a JSON summary from the run records of make_paper.py.

Every number in the report is computed here from the run records; every verdict sentence is
derived from those numbers by the rules stated beside it (nothing is written by hand).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from stats import fmt_mean_sd, mean_sd, welch

__all__ = ["write_report", "THEORY_TEXT"]

P_LEVEL = 0.05

THEORY_TEXT = """\
**Argument.** In a layer with binary (or few-level) activities, the gradient of the loss with
respect to a weight `w[j, i]` is a sum over positions of `a_i * delta_j`: the presynaptic
activity times the postsynaptic error signal. Two things follow.

1. *Fewer weights receive a non-zero update per example.* With k-WTA keeping k of C channels
   per location, at most a fraction k/C of the presynaptic units is active, so at most that
   fraction of the weights leaving them can receive gradient from one example. Without HCS a
   thresholded binary unit is active whenever its drive is positive (about half of the units),
   so far more weights are pushed by every example. For the linear readout this is exact: the
   cross-entropy gradient is `(p_c - y_c) * a_i` with `p_c - y_c != 0`, so the fraction of
   readout weights touched by one example *equals* the fraction of its active inputs.
2. *Fewer, more consistent level moves.* Probabilistic learning moves a level by one step with
   probability `|q|` (the desired change in level units), so each weight's update is a
   Bernoulli variable with variance `|q|(1 - |q|)` around the drift `q`. A weight whose
   per-example gradients disagree in sign gets a small Adam-normalised `|q|` but still flips
   now and then: an unbiased random walk that destroys the few-level code it has learned (with
   3 levels, one wrong move is a third of the weight's range). When units win only for the
   inputs they are selective for, the examples that touch a weight agree more often in sign,
   so `|q|` concentrates on weights with a consistent drift and fewer levels random-walk.

**Predictions checked below** (instrumented training, `analysis/paper/theory_probe.py`):
(a) readout: touched fraction = active-input fraction, exactly; (b) with HCS, a smaller
fraction of the weights is touched per example in every layer after the first; (c) with HCS, a
smaller fraction of the levels moves per step, and (d) per-weight sign consistency over examples
is higher. The measurement is the verdict; where it disagrees, the argument is wrong there.
"""


def _g(rec, key):
    cur = rec
    for part in key.split("."):
        cur = cur[part]
    return cur


def _sel(records, **match):
    return [r for r in records if all(r["spec"].get(k) == v for k, v in match.items())]


def _vals(records, key, **match):
    return [_g(r, key) for r in _sel(records, **match)]


def _bits(b) -> str:
    return "full" if int(b) == 32 else f"{b}"


def _pct(x, d=1) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x * 100:.{d}f}"


def _p(p) -> str:
    return "–" if p is None or math.isnan(p) else (f"{p:.3f}" if p >= 0.001 else "<0.001")


GRID_STUDIES = ("precision", "learning", "k")


def _study_settings(ds: dict, study: str) -> tuple[int, str]:
    """Epochs and the test-set phrase of a study (``grid_*`` keys apply to the grid studies only)."""
    if study in GRID_STUDIES and ds.get("grid_test_subset"):
        test = f"fixed stratified test subset of {int(ds['grid_test_subset']):,} images (seed 0)"
    else:
        test = "full test split"
    epochs = int(ds["grid_epochs"]) if study in GRID_STUDIES and ds.get("grid_epochs") else int(ds["epochs"])
    return epochs, test


def _caption(ds: dict, seeds, extra: str = "", study: str = "precision") -> str:
    subset = (f"fixed stratified training subset of {ds['train_subset']:,} images (seed 0)"
              if ds.get("train_subset") else "full training split")
    arch = f"{int(ds.get('layers') or 2)} conv blocks x {ds['channels']} channels"
    epochs, test = _study_settings(ds, study)
    return (f"*{ds['dataset']}; {subset}; {test}; {arch} (k-WTA in conv layers at k = 0.25 of the "
            f"channels unless stated, pooling layers k = 0.5); {epochs} epoch{'s' if epochs != 1 else ''}, batch "
            f"{ds['batch_size']}, cosine step schedule; mean ± sd (ddof 1) over seeds {list(seeds)}; accuracy in %."
            f"{(' ' + extra) if extra else ''}*")


def _study_records(res: dict) -> dict:
    """The records of each study of a section (a record shared by studies is in each)."""
    recs = res["records"]
    return {st: [r for r in recs if r["spec"] in specs] for st, specs in res["studies"].items()}


def write_report(out: Path, results: dict, *, seeds, command: str, quick: bool, wall_time_s: float,
                 machine: str, json_path=None) -> dict:
    """Write ``out/REPORT.md``, ``out/figures/*.png|pdf`` and the JSON summary; return the summary."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import figures as F
    from hcs_neuro.core.io import write_json_atomic, write_text_atomic

    out = Path(out)
    figdir = out / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    all_recs = [r for v in results.values() for r in v["records"]] + [p for v in results.values() for p in v["probes"]]
    n_fresh = sum(not r.get("cached") for r in all_recs)
    n_cached = len(all_recs) - n_fresh
    times = sorted(r.get("produced_utc", "") for r in all_recs if r.get("produced_utc"))
    summary = {"command": command, "quick": quick, "seeds": list(seeds), "wall_time_s": wall_time_s,
               "machine": machine, "n_runs": len(all_recs), "n_fresh": n_fresh, "n_cached": n_cached,
               "produced_first_utc": times[0] if times else None, "produced_last_utc": times[-1] if times else None,
               "datasets": {}}
    L = []
    L.append("# Reproducing the claims of hypercolumn sparsification (HCS)\n")
    L.append("Generated by `analysis/paper/make_paper.py` — do not edit by hand.\n")
    L.append(f"- Command: `{command}`" + (" (reduced smoke-test mode: NOT the study)" if quick else ""))
    L.append(f"- Written: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; this invocation took "
             f"{wall_time_s / 60:.1f} min (training and evaluation; 0 with --report-only) on {machine}.")
    L.append(f"- Runs: {len(all_recs)} ({n_fresh} trained by this invocation, {n_cached} read from the cache "
             f"`results/paper_cache/`, written earlier by the command named below); runs produced between "
             f"{summary['produced_first_utc']} and {summary['produced_last_utc']}"
             + (f" ({_span_min(times):.0f} min of wall time)" if len(times) > 1 else "")
             + "; made by: " + ", ".join(f"`{c}`" for c in sorted({r.get('produced_by', '?') for r in all_recs}))
             + ".")
    sims_all = [r for v in results.values() for r in v.get("sims", [])]
    if sims_all:
        n_sf = sum(not r.get("cached") for r in sims_all)
        L.append(f"- Simulated spiking runs (energy section): {len(sims_all)} models ({n_sf} simulated by this "
                 f"invocation, {len(sims_all) - n_sf} read from the cache); not counted in the runs above.")
    by_time = sorted((r.get("produced_utc", ""), r["code"].get("git_head", "?")) for r in all_recs if r.get("code"))
    heads = [by_time[0][1], by_time[-1][1]] if by_time else ["?"]
    n_heads = len({h for _, h in by_time})
    n_late = sum(1 for r in all_recs if r.get("code") and not r["code"].get("hashed_at_import"))
    shas = sorted({r["code"].get("training_py_sha1", "?") for r in all_recs if r.get("code")})
    L.append(f"- Code: git HEAD {heads[0]} (first run) .. {heads[-1]} (last run), {n_heads} distinct commits "
             f"(the working tree is shared with other engineers who commit while the study runs); "
             f"`hcs_neuro/training.py` SHA-1 {', '.join(shas)}."
             + (f" {n_late} run records (made before the driver hashed the file at import) hash the file when "
                "the record was written, not when the worker process imported it (once, at its first run): a "
                "second SHA-1 there can be a later edit on disk that the running workers never executed."
                if n_late else ""))
    L.append("- Learning: probabilistic level updates (`hcs_neuro.train`, Adam-normalised step in level "
             "units, stochastic rounding, seeded) unless a row says shadow; accuracy from the NumPy reference "
             "forward pass (integer arithmetic) on the test set named in each caption (the whole test split unless "
             "a caption names a fixed subset).")
    L.append(f"- Error bars and ± are the sample standard deviation over seeds; p-values are two-sided "
             f"Welch t-tests over seeds (n = {len(list(seeds))} per group: a weak test; read the effect sizes).\n")
    L.append("## Claims at a glance\n")
    glance_at = len(L)
    verdicts = []

    for name, res in results.items():
        ds = res["grid"]
        recs = res["records"]
        dsum = summary["datasets"][name] = {"dataset": ds["dataset"]}
        L.append(f"## {ds['dataset']}\n")
        if res.get("skipped"):
            L.append(f"Not run: {res['skipped']}.\n")
            verdicts.append(f"- {ds['dataset']}: not run ({res['skipped']}).")
            continue
        srec = _study_records(res)
        sizes = []
        for st in ("precision", "data"):
            if srec.get(st):
                full = [r for r in srec[st] if r["spec"]["data_fraction"] == 1.0] or srec[st]
                ep, _ = _study_settings(ds, st)
                sizes.append(f"{'Precision, learning-rule and k studies' if st == 'precision' else 'data-efficiency study'}: "
                             f"{full[0]['n_train']:,} training images, {ep} epoch{'s' if ep != 1 else ''} (at 100 %), "
                             f"{full[0]['n_test']:,} test images")
        cpu = sum(float(r.get("wall_time_s", r.get("train_time_s", 0.0)) or 0.0) for r in recs)
        L.append(f"{res['n_specs']} runs (grid points x seeds, theory probes not counted); "
                 + (f"section wall time in this invocation {res['wall_time_s'] / 60:.1f} min (cached points take ~0). "
                    if any(not r.get("cached") for r in recs) else "all read from the cache by this invocation. ")
                 + f"Sum of the recorded per-run training + evaluation wall times: {cpu / 60:.1f} min (each run on one "
                 f"thread of a shared, loaded machine: an upper bound of its CPU time). "
                 + ("; ".join(sizes) + "." if sizes else "") + "\n")
        missing = [s for lst in res["studies"].values() for s in lst
                   if not any(r["spec"] == s for r in recs)]
        if missing:
            L.append(f"**Missing: {len(missing)} of the planned runs did not finish** (shown as –).\n")
        cap = _caption(ds, seeds)
        tag = ds["dataset"].replace("-", "_")

        # ---------------- precision x HCS
        wbs, abs_ = ds.get("weight_bits", []), ds.get("act_bits", [])
        if wbs and abs_:
            L.append("### Claim 1: precision x HCS (probabilistic learning)\n")
            hdr = "| weight bits | " + " | ".join(f"act {_bits(a)}: HCS | act {_bits(a)}: no HCS | Δ (p)" for a in abs_) + " |"
            L.append(hdr)
            L.append("|" + "---|" * (1 + 3 * len(abs_)))
            cells = []
            for wb in wbs:
                row = [f"| {_bits(wb)} "]
                for ab in abs_:
                    a = _vals(srec["precision"], "test_accuracy", weight_bits=wb, act_bits=ab, hcs=True, learning="probabilistic",
                              data_fraction=1.0, k=0.25)
                    b = _vals(srec["precision"], "test_accuracy", weight_bits=wb, act_bits=ab, hcs=False,
                              learning="probabilistic", data_fraction=1.0, k=0.25)
                    d, p = welch(a, b)
                    cells.append({"weight_bits": wb, "act_bits": ab, "hcs_mean": mean_sd(a)[0],
                                  "no_hcs_mean": mean_sd(b)[0], "diff": d, "p": p})
                    row.append(f"| {fmt_mean_sd(a)} | {fmt_mean_sd(b)} | {_pct(d) if not math.isnan(d) else '–'} ({_p(p)}) ")
                L.append("".join(row) + "|")
            L.append("\n" + _caption(ds, seeds, "Δ = HCS − no HCS in percentage points; p: Welch t-test.") + "\n")
            fig, ax = plt.subplots(figsize=(6, 4))
            F.plot_precision(srec["precision"], wbs, abs_, ax=ax, title=f"{ds['dataset']}: precision × HCS")
            F.save(fig, figdir / f"precision_{tag}.png")
            plt.close(fig)
            L.append(f"![precision x HCS](figures/precision_{tag}.png)\n")
            low = [c for c in cells if c["weight_bits"] != 32 and c["act_bits"] != 32 and not math.isnan(c["diff"])]
            full = [c for c in cells if c["weight_bits"] == 32 and c["act_bits"] == 32 and not math.isnan(c["diff"])]
            better = [c for c in low if c["diff"] > 0]
            sig = [c for c in better if not math.isnan(c["p"]) and c["p"] < P_LEVEL]
            worse_sig = [c for c in low if c["diff"] < 0 and not math.isnan(c["p"]) and c["p"] < P_LEVEL]
            mean_gain = float(np.mean([c["diff"] for c in low])) if low else float("nan")
            if low:
                if len(better) == len(low) and len(sig) >= max(1, len(low) // 2):
                    v = "holds in our measurements"
                elif len(better) > len(low) // 2 and not worse_sig:
                    v = "holds only partly"
                else:
                    v = "does NOT hold in our measurements"
                if len(low) < 3:
                    v += f" (only {len(low)} precision setting measured)"
                s = (f"At low precision (integer weights and activities: every cell without 'full'; {len(low)} cells) HCS was more "
                     f"accurate in {len(better)} cells ({len(sig)} with p < {P_LEVEL}), less accurate with "
                     f"p < {P_LEVEL} in {len(worse_sig)}; mean gain {mean_gain * 100:+.1f} points.")
                if full:
                    s += f" At full precision (weights and activities) HCS − no HCS = {full[0]['diff'] * 100:+.1f} points."
                L.append(f"**Verdict (claim 1, {ds['dataset']}): the claim that HCS is critical for probabilistic "
                         f"low-precision learning {v}.** {s} (Rule: holds if HCS is better in every low-precision "
                         f"cell and significantly so in at least half; partly if better in most and never "
                         f"significantly worse.)\n")
                verdicts.append(f"- Claim 1 (HCS critical for low-precision probabilistic learning), {ds['dataset']}: "
                                f"**{v}** — {s}")
            dsum["precision"] = cells

        # ---------------- probabilistic vs shadow
        lbits = ds.get("learning_bits", [])
        if lbits:
            L.append("### Claim 1b: probabilistic vs shadow-weight learning (binary activities)\n")
            L.append("| weight bits | HCS | probabilistic | shadow | Δ prob − shadow (p) |")
            L.append("|---|---|---|---|---|")
            lcells = []
            for wb in lbits:
                for hcs in (True, False):
                    a = _vals(srec["learning"], "test_accuracy", weight_bits=wb, act_bits=1, hcs=hcs, learning="probabilistic",
                              data_fraction=1.0, k=0.25)
                    b = _vals(srec["learning"], "test_accuracy", weight_bits=wb, act_bits=1, hcs=hcs, learning="shadow",
                              data_fraction=1.0, k=0.25)
                    d, p = welch(a, b)
                    lcells.append({"weight_bits": wb, "hcs": hcs, "diff": d, "p": p})
                    L.append(f"| {wb} | {'yes' if hcs else 'no'} | {fmt_mean_sd(a)} | {fmt_mean_sd(b)} | "
                             f"{_pct(d)} ({_p(p)}) |")
            L.append(f"\n{cap}\n")
            fig, ax = plt.subplots(figsize=(6, 3.8))
            F.plot_learning(srec["learning"], lbits, ax=ax, title=f"{ds['dataset']}: learning rule")
            F.save(fig, figdir / f"learning_{tag}.png")
            plt.close(fig)
            L.append(f"![learning rule](figures/learning_{tag}.png)\n")
            hc = [c for c in lcells if c["hcs"] and not math.isnan(c["diff"])]
            if hc:
                s = "; ".join(f"{c['weight_bits']} bit with HCS: {c['diff'] * 100:+.1f} points (p {_p(c['p'])})"
                              for c in hc)
                verdicts.append(f"- Probabilistic vs shadow-weight learning, {ds['dataset']}: {s}.")
                L.append(f"Probabilistic − shadow: {s}.\n")
            dsum["learning"] = lcells

        # ---------------- k
        kfs = ds.get("k_fractions", [])
        if kfs:
            L.append("### k: accuracy, activity sparsity and emergent pruning against k (ternary weights, binary activities)\n")
            L.append("| k (fraction) | k (count) | accuracy | conv active fraction (%) | zero-level weights (%) | "
                     "never-used synapses (%) | synapses left / dense |")
            L.append("|---|---|---|---|---|---|---|")
            krows = []
            rows = [(kf, True) for kf in kfs] + [(0.25, False)]
            for kf, hcs in rows:
                sel = _sel(srec["k"], weight_bits=2, act_bits=1, hcs=hcs, learning="probabilistic", data_fraction=1.0, k=kf)
                acc = [r["test_accuracy"] for r in sel]
                actf = [r["conv_active_fraction"] for r in sel]
                zero = [r["pruning"]["zero_level_weight_fraction"] for r in sel]
                unused = [r["pruning"]["never_used_synapse_fraction"] for r in sel]
                left = [r["pruning"]["used_synapses"] / r["pruning"]["dense_synapses"] for r in sel]
                kc = sel[0]["k_per_layer"][0] if sel and hcs else None
                L.append(f"| {kf:g}{'' if hcs else ' (no HCS)'} | {kc if kc else '–'} | {fmt_mean_sd(acc)} | "
                         f"{fmt_mean_sd(actf)} | {fmt_mean_sd(zero)} | {fmt_mean_sd(unused)} | {fmt_mean_sd(left)} |")
                krows.append({"k": kf, "hcs": hcs, "accuracy": mean_sd(acc)[0], "conv_active_fraction": mean_sd(actf)[0],
                              "zero_level_weight_fraction": mean_sd(zero)[0],
                              "never_used_synapse_fraction": mean_sd(unused)[0]})
            L.append("\n" + _caption(ds, seeds, "Conv active fraction: non-zero conv outputs / all conv outputs on the test set. "
                     "Synapses: non-zero weight instances of the weighted layers (convolution weights counted at "
                     "every position they reach, `hcs_neuro.core.topology.layer_fan_out`); never used: presynaptic unit "
                     "inactive on every test image; left / dense: used non-zero synapses over all weight "
                     "instances.") + "\n")
            fig, axs = plt.subplots(1, 2, figsize=(10, 3.8))
            F.plot_k(srec["k"], kfs, ax=axs[0], title=f"{ds['dataset']}: accuracy vs k")
            F.plot_k(srec["k"], kfs, key="conv_active_fraction", ylabel="conv units active (%)", ax=axs[1],
                     title=f"{ds['dataset']}: activity vs k")
            F.save(fig, figdir / f"k_{tag}.png")
            plt.close(fig)
            L.append(f"![k](figures/k_{tag}.png)\n")
            fig, ax = plt.subplots(figsize=(6, 4))
            F.plot_pruning(srec["k"], kfs, ax=ax, title=f"{ds['dataset']}: emergent pruning")
            F.save(fig, figdir / f"pruning_{tag}.png")
            plt.close(fig)
            L.append(f"![pruning](figures/pruning_{tag}.png)\n")
            dsum["k"] = krows
            _pruning_verdict(L, verdicts, srec["k"], ds)

        if not kfs:
            L.append("### Claim 3: emergent pruning (ternary weights, binary activities, k = 0.25)\n")
            _pruning_verdict(L, verdicts, srec.get("data") or recs, ds)

        # ---------------- data efficiency
        dfs = ds.get("data_fractions", [])
        if dfs:
            L.append("### Claim 2: data efficiency (ternary weights, binary activities)\n")
            L.append("| training images (%) | images | epochs | HCS | no HCS | Δ (p) |")
            L.append("|---|---|---|---|---|---|")
            drows = []
            for f in dfs:
                a_sel = _sel(srec["data"], weight_bits=2, act_bits=1, hcs=True, learning="probabilistic", data_fraction=f, k=0.25)
                a = [r["test_accuracy"] for r in a_sel]
                b = _vals(srec["data"], "test_accuracy", weight_bits=2, act_bits=1, hcs=False, learning="probabilistic",
                          data_fraction=f, k=0.25)
                d, p = welch(a, b)
                nimg = a_sel[0]["n_train"] if a_sel else "–"
                ep = a_sel[0]["spec"]["epochs"] if a_sel else "–"
                drows.append({"fraction": f, "diff": d, "p": p, "hcs_mean": mean_sd(a)[0], "no_hcs_mean": mean_sd(b)[0]})
                L.append(f"| {f * 100:g} | {nimg} | {ep} | {fmt_mean_sd(a)} | {fmt_mean_sd(b)} | {_pct(d)} ({_p(p)}) |")
            L.append("\n" + _caption(ds, seeds, "Percentages are of the training set named here (for a fixed "
                     "training subset: of that subset, not of the whole split). "
                     "Subsets are class-stratified, drawn with the run's seed; smaller "
                     f"subsets train for more epochs (epochs / fraction, at most {ds.get('data_max_epochs')}; see the "
                     "epochs column) so that the number of steps stays comparable.", study="data") + "\n")
            fig, ax = plt.subplots(figsize=(5.5, 3.8))
            full_n = max((r["n_train"] for r in srec["data"] if r["spec"]["data_fraction"] == 1.0), default=0)
            F.plot_data(srec["data"], dfs, full_n, ax=ax, title=f"{ds['dataset']}: data efficiency")
            F.save(fig, figdir / f"data_{tag}.png")
            plt.close(fig)
            L.append(f"![data efficiency](figures/data_{tag}.png)\n")
            small = [r for r in drows if r["fraction"] <= 0.1 and not math.isnan(r["diff"])]
            full_row = [r for r in drows if r["fraction"] == 1.0 and not math.isnan(r["diff"])]
            if small and full_row:
                gain_small = float(np.mean([r["diff"] for r in small]))
                gain_full = full_row[0]["diff"]
                if gain_small > 0 and gain_small > gain_full:
                    v = "holds in our measurements"
                elif gain_small > 0:
                    v = "holds only partly (HCS helps with little data, but not more than with all data)"
                else:
                    v = "does NOT hold in our measurements"
                s = (f"mean HCS gain with ≤ 10% of the data {gain_small * 100:+.1f} points vs "
                     f"{gain_full * 100:+.1f} points with all of it")
                L.append(f"**Verdict (claim 2, {ds['dataset']}): more data-efficient learning with HCS {v}** — {s}. "
                         f"(Rule: holds if the gain at ≤ 10% of the data is positive and larger than at 100%.)\n")
                verdicts.append(f"- Claim 2 (data efficiency), {ds['dataset']}: **{v}** — {s}.")
            dsum["data"] = drows

        # ---------------- theory
        probes = res.get("probes") or []
        if probes:
            _theory_section(L, verdicts, probes, ds, seeds, figdir, plt, F, tag)
            dsum["theory"] = [{"hcs": p["spec"]["hcs"], "seed": p["spec"]["seed"], "layers": p["layers"],
                               "readout_prediction_max_abs_error": p["readout_prediction_max_abs_error"]}
                              for p in probes]

    L.append("## Energy per image (analytic spike counts, chip level)\n")
    any_energy = False
    for name, res in results.items():
        if not res.get("studies"):
            continue
        srec = _study_records(res)
        recs = [r for r in srec.get("precision", []) + srec.get("k", []) if r.get("energy")]
        if not recs:
            continue
        any_energy = True
        ds = res["grid"]
        tag = ds["dataset"].replace("-", "_")
        L.append(f"### {ds['dataset']}\n")
        L.append("| weight bits | act bits | HCS | k | SOPs / image | spikes / image | spiking, Loihi (nJ) | "
                 "reference dense fp32 (nJ) | reference, zeros skipped, own precision (nJ) |")
        L.append("|---|---|---|---|---|---|---|---|---|")
        rows = []
        for wb in ds.get("weight_bits", []):
            for ab in ds.get("act_bits", []):
                for hcs in (True, False):
                    rows.append((wb, ab, hcs, 0.25))
        rows += [(2, 1, True, kf) for kf in ds.get("k_fractions", []) if kf != 0.25]
        erows = []
        for wb, ab, hcs, kf in rows:
            sel = _sel(recs, weight_bits=wb, act_bits=ab, hcs=hcs, learning="probabilistic", data_fraction=1.0, k=kf)
            if not sel:
                continue
            e = lambda key: [_energy(r, key) for r in sel]  # noqa: E731
            spk = ab != 32
            sops = fmt_mean_sd(e("sops_analytic_per_image"), 1.0, 0) if spk else "– (float activities)"
            spikes = fmt_mean_sd(e("spikes_analytic_per_image"), 1.0, 0) if spk else "–"
            loihi = fmt_mean_sd(e("spiking_loihi_uj"), 1e3, 1) if spk else "–"
            L.append(f"| {_bits(wb)} | {_bits(ab)} | {'yes' if hcs else 'no'} | {kf:g}{'' if hcs else ' (off)'} | "
                     f"{sops} | {spikes} | {loihi} | {fmt_mean_sd(e('reference_dense_fp32_uj'), 1e3, 1)} | "
                     f"{fmt_mean_sd(e('reference_effective_own_precision_uj'), 1e3, 2)} |")
            erows.append({"weight_bits": wb, "act_bits": ab, "hcs": hcs, "k": kf,
                          "spiking_loihi_uj": mean_sd(e("spiking_loihi_uj"))[0] if spk else None,
                          "reference_effective_own_precision_uj": mean_sd(e("reference_effective_own_precision_uj"))[0],
                          "sops_analytic_per_image": mean_sd(e("sops_analytic_per_image"))[0] if spk else None})
        n_e = recs[0]["energy"]["n_images"]
        L.append(f"\n*{ds['dataset']}; the first {n_e} test images; mean ± sd over seeds. Spike counts are ANALYTIC "
                 "(`hcs_neuro.measure.energy.network_energy` without a simulation: one spike per winner, its activity level "
                 "carried as a multiplier (`single` coding), one spike per non-zero input pixel), priced with the Loihi profile (23.6 pJ per synaptic "
                 "op, 1.7 pJ per spike; Davies et al. 2018; neuron updates not counted without a simulation). "
                 "Reference: dense MACs at the `cmos45_fp32` profile (4.6 pJ per MAC, 45 nm, Horowitz 2014) and "
                 "non-zero products (zero activities and zero weights skipped) at its own precision: `cmos45_lowprec` "
                 "(an int32 accumulate, 0.1 pJ) when weights and activities are both integer levels, `cmos45_fp32` "
                 "when either is full precision (`hcs_neuro/data/energy_profiles.toml`). " + recs[0]["energy"]["note"] + ". Runs of the precision and k studies (" + _caption(ds, seeds, study="precision").strip("*").split("; mean")[0]
                 + "). Simulated spiking runs of some of these models: the next section.*\n")
        kfs = ds.get("k_fractions", [])
        if kfs:
            fig, ax = plt.subplots(figsize=(5.5, 3.8))
            for key, label, color in (("spiking_loihi_uj", "spiking (Loihi, analytic spikes)", "tab:green"),
                                      ("reference_effective_own_precision_uj",
                                       "reference, zeros skipped (45 nm int32 add)", "tab:blue"),
                                      ("reference_dense_fp32_uj", "reference dense fp32 (45 nm)", "tab:gray")):
                m, sd = [], []
                for kf in kfs:
                    mu, sdv, _ = mean_sd([_energy(r, key) for r in _sel(recs, weight_bits=2, act_bits=1, hcs=True,
                                                                         learning="probabilistic", data_fraction=1.0,
                                                                         k=kf)])
                    m.append(mu * 1e3)
                    sd.append(sdv * 1e3)
                ax.errorbar(kfs, m, yerr=sd, capsize=3, marker="o", color=color, label=label)
                mu, _, n = mean_sd([_energy(r, key) for r in _sel(recs, weight_bits=2, act_bits=1, hcs=False,
                                                                   learning="probabilistic", data_fraction=1.0, k=0.25)])
                if n:
                    ax.axhline(mu * 1e3, color=color, ls="--", lw=1, label=f"{label.split(' (')[0]}, no HCS")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xticks(kfs, [f"{kf:g}" for kf in kfs], fontsize=8)
            ax.set_xlabel("k (fraction of the conv channels that win)")
            ax.set_ylabel("energy per image (nJ, chip level)")
            ax.set_title(f"{ds['dataset']}: energy vs k (ternary weights, binary activities)", fontsize=9)
            ax.legend(fontsize=6.5, title="mean ± sd over seeds", title_fontsize=7)
            ax.grid(alpha=0.3, which="both")
            F.save(fig, figdir / f"energy_{tag}.png")
            plt.close(fig)
            L.append(f"![energy](figures/energy_{tag}.png)\n")
        summary["datasets"][name]["energy"] = erows
        on = [r for r in erows if (r["weight_bits"], r["act_bits"], r["hcs"], r["k"]) == (2, 1, True, 0.25)]
        off = [r for r in erows if (r["weight_bits"], r["act_bits"], r["hcs"]) == (2, 1, False)]
        if on and off and on[0]["spiking_loihi_uj"] and off[0]["spiking_loihi_uj"]:
            s_ = (f"ternary weights, binary activities: spiking (Loihi, analytic spikes) {_nj(on[0]['spiking_loihi_uj'])} "
                  f"per image with HCS (k = 0.25) vs {_nj(off[0]['spiking_loihi_uj'])} without "
                  f"(ratio {on[0]['spiking_loihi_uj'] / off[0]['spiking_loihi_uj']:.2f}); the reference network with "
                  f"zeros skipped {_nj(on[0]['reference_effective_own_precision_uj'])} with HCS vs "
                  f"{_nj(off[0]['reference_effective_own_precision_uj'])} without")
            L.append(f"Energy, {ds['dataset']}: {s_}.\n")
            verdicts.append(f"- Energy (analytic, chip level), {ds['dataset']}: {s_}.")
    if not any_energy:
        L.append("No energy numbers in this run.\n")
    _sim_energy_section(L, verdicts, summary, results, figdir, plt, F)
    L.append("## Reproduce\n")
    L.append("```\nmake paper          # = .venv/bin/python analysis/paper/make_paper.py  (full study, resumable)\n"
             "make paper-quick    # = .venv/bin/python analysis/paper/make_paper.py --quick (smoke test)\n"
             "python analysis/paper/make_paper.py --report-only   # rebuild this report from the cache only\n```\n")
    L.append("Grids: `analysis/paper/experiments.toml`. Per-run records (JSON, with the time and command that "
             "produced each) in `results/paper_cache/` under the output folder (not committed).\n")
    L[glance_at:glance_at] = verdicts + [""]
    write_text_atomic(out / "REPORT.md", "\n".join(L) + "\n")
    write_json_atomic(Path(json_path) if json_path else out / "results" / "paper_summary.json", summary)
    return summary


def _nj(uj: float) -> str:
    """An energy given in µJ, printed in nJ below 1 µJ."""
    return f"{uj:.2f} µJ" if uj >= 1.0 else f"{uj * 1e3:.3g} nJ"


def _span_min(times) -> float:
    """Minutes between the first and the last ISO-8601 UTC time stamp."""
    import datetime as dt

    ts = [dt.datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ") for t in times]
    return (max(ts) - min(ts)).total_seconds() / 60.0


def _energy(rec, key):
    """An energy figure of a run record; the own-precision reference energy is priced here.

    ``reference_effective_own_precision_uj`` = effective ops x the MAC price of
    ``cmos45_lowprec`` when weights and activities are integer levels, else ``cmos45_fp32``.
    """
    if key != "reference_effective_own_precision_uj":
        return rec["energy"][key]
    from hcs_neuro.measure.profiles import get_profile

    s = rec["spec"]
    name = "cmos45_fp32" if 32 in (int(s["weight_bits"]), int(s["act_bits"])) else "cmos45_lowprec"
    return rec["energy"]["effective_ops_per_image"] * get_profile(name).mac_pj * 1e-6


def _pruning_verdict(L, verdicts, recs, ds):
    a = _sel(recs, weight_bits=2, act_bits=1, hcs=True, learning="probabilistic", data_fraction=1.0, k=0.25)
    b = _sel(recs, weight_bits=2, act_bits=1, hcs=False, learning="probabilistic", data_fraction=1.0, k=0.25)
    if not a or not b:
        return
    za = [r["pruning"]["zero_level_weight_fraction"] for r in a]
    zb = [r["pruning"]["zero_level_weight_fraction"] for r in b]
    ua = [r["pruning"]["never_used_synapse_fraction"] for r in a]
    ub = [r["pruning"]["never_used_synapse_fraction"] for r in b]
    dz, pz = welch(za, zb)
    du, pu = welch(ua, ub)
    dense = mean_sd([r["pruning"]["dense_synapses"] for r in a])[0]
    left_a = mean_sd([r["pruning"]["used_synapses"] for r in a])[0]
    left_b = mean_sd([r["pruning"]["used_synapses"] for r in b])[0]
    nz_a = mean_sd([r["pruning"]["nonzero_synapses"] for r in a])[0]
    init = 1 / 3  # levels drawn uniformly from {-1, 0, +1} at initialisation (hcs_neuro.train.HCSNet)
    holds = dz > 0 and (not math.isnan(pz) and pz < P_LEVEL)
    v = "holds in our measurements" if holds else ("holds only partly" if dz > 0 or du > 0 else
                                                  "does NOT hold in our measurements")
    s = (f"at k = 0.25, zero-level weights {np.mean(za) * 100:.1f}% with HCS vs {np.mean(zb) * 100:.1f}% without "
         f"(Δ {dz * 100:+.1f} points, p {_p(pz)}; initialisation: {init * 100:.0f}% zero); synapses whose "
         f"presynaptic unit never wins on the test set: {np.mean(ua) * 100:.1f}% of the non-zero synapses with HCS "
         f"vs {np.mean(ub) * 100:.1f}% without (Δ {du * 100:+.1f} points, p {_p(pu)}). Of {dense:,.0f} weight "
         f"instances (synapses of a dense spiking network), HCS leaves {nz_a:,.0f} non-zero and {left_a:,.0f} "
         f"non-zero and used ({(1 - left_a / dense) * 100:.1f}% removed), no HCS {left_b:,.0f} "
         f"({(1 - left_b / dense) * 100:.1f}% removed)")
    L.append(f"**Verdict (claim 3, {ds['dataset']}): emergent pruning with HCS {v}** — {s}. (Rule: holds if HCS "
             f"has significantly more zero-level weights than no HCS.)\n")
    verdicts.append(f"- Claim 3 (emergent pruning), {ds['dataset']}: **{v}** — {s}.")


def _theory_section(L, verdicts, probes, ds, seeds, figdir, plt, F, tag):
    L.append("### Claim 4: theory and its check\n")
    L.append(THEORY_TEXT)
    names = [f"{l['type']} {l['index']}" for l in probes[0]["layers"]]
    keys = [("input_active_fraction", "presynaptic units active (%)"),
            ("touched_fraction", "weights touched per example (%)"),
            ("changed_fraction_per_step", "levels moved per step (%)"),
            ("flip_fraction_per_step", "moves against the final sign per step (%)"),
            ("sign_consistency", "sign consistency (%)")]
    L.append("| layer | quantity | HCS | no HCS | Δ (p) |")
    L.append("|---|---|---|---|---|")
    res = {}
    for li, nm in enumerate(names):
        for key, label in keys:
            a = [p["layers"][li][key] for p in probes if p["spec"]["hcs"]]
            b = [p["layers"][li][key] for p in probes if not p["spec"]["hcs"]]
            d, pv = welch(a, b)
            res[(li, key)] = (d, pv)
            L.append(f"| {nm} | {label} | {fmt_mean_sd(a, digits=2)} | {fmt_mean_sd(b, digits=2)} | "
                     f"{_pct(d, 2)} ({_p(pv)}) |")
    acc_a = [p["test_accuracy"] for p in probes if p["spec"]["hcs"]]
    acc_b = [p["test_accuracy"] for p in probes if not p["spec"]["hcs"]]
    err = max(p["readout_prediction_max_abs_error"] for p in probes)
    p0 = probes[0]
    L.append(f"\n*{ds['dataset']}; ternary weights, binary activities, k = 0.25, probabilistic learning, "
             f"{p0['spec']['epochs']} epochs, batch {p0['spec']['batch_size']}; per-example quantities on "
             f"{p0['probe_examples']} fixed test images at steps {p0['probe_steps']}; per-step quantities averaged "
             f"over all {p0['steps']} steps; mean ± sd over seeds {list(seeds)}. Test accuracy of these runs: HCS "
             f"{fmt_mean_sd(acc_a)}, no HCS {fmt_mean_sd(acc_b)}.*\n")
    fig, axs = plt.subplots(1, 4, figsize=(17, 3.8))
    fig.subplots_adjust(wspace=0.3)
    F.plot_theory(probes, "touched_fraction", "weights touched (% per example)", ax=axs[0], scale=100,
                  title="(b) gradient support per example")
    F.plot_theory(probes, "changed_fraction_per_step", "levels moved (% per step)", ax=axs[1], scale=100,
                  title="(c) level moves per step")
    F.plot_theory(probes, "flip_fraction_per_step", "wasted moves (% per step)", ax=axs[2], scale=100,
                  title="(c') moves against the final sign")
    F.plot_theory(probes, "sign_consistency", "sign consistency (%)", ax=axs[3], scale=100,
                  title="(d) gradient sign consistency")
    F.save(fig, figdir / f"theory_{tag}.png")
    plt.close(fig)
    L.append(f"![theory](figures/theory_{tag}.png)\n")
    later = range(1, len(names))
    b_ok = all(res[(li, "touched_fraction")][0] < 0 for li in later)
    c_ok = all(res[(li, "changed_fraction_per_step")][0] < 0 for li in range(len(names)))
    d_ok = all(res[(li, "sign_consistency")][0] > 0 for li in range(len(names)))
    checks = [f"(a) readout touched = active-input fraction: max |error| {err:.2g} over all probes "
              f"({'holds' if err < 1e-12 else 'FAILS'})",
              f"(b) fewer weights touched per example with HCS in layers after the first: "
              f"{'holds' if b_ok else 'does NOT hold'}",
              f"(c) fewer levels moved per step with HCS in every layer: {'holds' if c_ok else 'does NOT hold'}",
              f"(d) higher sign consistency with HCS in every layer: {'holds' if d_ok else 'does NOT hold'}"]
    L.append("**Checks:** " + "; ".join(checks) + ".\n")
    if not b_ok or not c_ok:
        L.append("Where (b) or (c) fail, the argument's premise fails for the shared convolution weights: a conv "
                 "weight is touched by an example if *any* position has an active input and a non-zero error "
                 "signal, and the training's default `window` straight-through estimator "
                 "(`hcs_neuro.train`) passes error to every unit within one unit of its hypercolumn's "
                 "k-th/(k+1)-th boundary, losers included; with HCS every hypercolumn has such a boundary, "
                 "without HCS the boundary is drive = 0. This is a hypothesis for the failure, not measured "
                 "here.\n")
    verdicts.append(f"- Claim 4 (theory), {ds['dataset']}: " + "; ".join(checks) + ".")


def _sim_rows(sims):
    """Simulated-energy records grouped by grid point (seeds pooled), in the order precision, then k."""
    groups = {}
    for r in sims:
        sp = r["spec"]
        key = (int(sp["weight_bits"]), int(sp["act_bits"]), bool(sp["hcs"]), float(sp["k"]))
        groups.setdefault(key, []).append(r)
    return [(k, groups[k]) for k in sorted(groups, key=lambda t: (t[3] != 0.25, t[3], t[0], t[1], not t[2]))]


def _sim_energy_section(L, verdicts, summary, results, figdir, plt, F):
    """Energy per image from simulated spiking runs (hcs_neuro.brian.session), beside the analytic counts."""
    L.append("## Energy per image from simulated spiking runs (chip level)\n")
    if not any(res.get("sims") for res in results.values()):
        wanted = [res["grid"]["dataset"] for res in results.values() if res.get("grid", {}).get("sim_energy_images")]
        L.append("No simulated spiking runs in this invocation"
                 + (f" (planned for {', '.join(wanted)}, none finished or cached)" if wanted else
                    " (`sim_energy_images` is 0 or absent in every section of the grid)") + ".\n")
        return
    for name, res in results.items():
        sims = res.get("sims") or []
        ds = res["grid"]
        if not sims:
            if ds.get("sim_energy_images"):
                L.append(f"### {ds['dataset']}\n\nPlanned but not run (no simulated record cached).\n")
            continue
        tag = ds["dataset"].replace("-", "_")
        rows = _sim_rows(sims)
        r0 = sims[0]
        n_img = r0["n_images"]
        seeds = sorted({r["spec"]["seed"] for r in sims})
        L.append(f"### {ds['dataset']}\n")
        L.append(f"Each trained model (seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}) was run as "
                 f"a Brian2 spiking network by `hcs_neuro.brian.session.simulate` (whole-network phased race, "
                 f"`circuits/network_race.toml`, Brian2 `{r0['device']}` device) on the first **{n_img} test images** "
                 f"of its study's test set, and counted by `hcs_neuro.measure.energy.network_energy` from the simulation; the "
                 f"analytic counts are those of the same images from the reference network (one spike per winner, "
                 f"reference activity x exact fan-out). Counts are means per image.\n")
        L.append("**Counts, simulated vs analytic (side by side).**\n")
        L.append("| weight bits | act bits | HCS | k | model test accuracy (simulated model / run record) | class "
                 "agreement | input spikes sim / analytic | excitatory "
                 "spikes sim / analytic | feed-forward SOPs sim / analytic | equal on every image | interneuron "
                 "spikes (sim) | circuit SOPs (sim) | neuron updates (sim) | steps / image |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        out_rows = []
        for (wb, ab, hcs, kf), grp in rows:
            c = lambda key: float(np.mean([g["counts"][key] for g in grp]))  # noqa: E731
            eq = all(all(g["counts_equal_every_image"].values()) for g in grp)
            agree = float(np.mean([g["class_agreement"] for g in grp]))
            used, recd = _model_accuracies(grp)
            L.append(f"| {_bits(wb)} | {_bits(ab)} | {'yes' if hcs else 'no'} | {kf:g}{'' if hcs else ' (off)'} | "
                     f"{_pct(used)} / {_pct(recd)} | {agree * 100:.1f} % | {c('input_spikes_sim'):,.1f} / {c('input_spikes_analytic'):,.1f} | "
                     f"{c('excitatory_spikes_sim'):,.1f} / {c('excitatory_spikes_analytic'):,.1f} | "
                     f"{c('sops_feedforward_sim'):,.0f} / {c('sops_analytic'):,.0f} | {'yes' if eq else '**NO**'} | "
                     f"{c('interneuron_spikes_sim'):,.1f} | {c('sops_circuit_sim'):,.0f} | "
                     f"{c('neuron_updates_sim'):,.0f} | {np.mean([g['steps_per_image'] or 0 for g in grp]):.0f} |")
            e = lambda key: float(np.mean([g["energy_pj"]["loihi"][key] for g in grp]))  # noqa: E731
            own = grp[0]["energy_pj"]["own_precision_profile"]
            out_rows.append({
                "weight_bits": wb, "act_bits": ab, "hcs": hcs, "k": kf, "n_models": len(grp), "counts_equal": eq,
                "class_agreement": agree, "loihi_sim_pj": e("total_sim"), "loihi_analytic_pj": e("total_analytic"),
                "loihi_ff_sim_pj": e("feedforward_sim"), "loihi_circuit_pj": e("circuit_sim"),
                "loihi_updates_pj": e("neuron_updates_sim"),
                "loihi_sim_sd_pj": _pool_sd(grp, "loihi_simulated_sd_over_images", "total_sim"),
                "loihi_analytic_sd_pj": _pool_sd(grp, "loihi_analytic_sd_over_images", "total_analytic"),
                "ref_dense_fp32_pj": float(np.mean([g["energy_pj"]["reference"]["cmos45_fp32"]["dense_pj"] for g in grp])),
                "ref_own_effective_pj": float(np.mean([g["energy_pj"]["reference_own_effective"] for g in grp])),
                "own_profile": own,
                "reference_accuracy": float(np.mean([g["reference_accuracy"] for g in grp])),
                "spiking_accuracy": float(np.mean([g["spiking_accuracy"] for g in grp])),
                "sop_mismatches": int(sum(g["sop_check"]["n_sop_mismatches_where_winners_agree"] for g in grp)),
                "model_test_accuracy": used, "record_test_accuracy": recd,
                "retrained": any(g["model"]["model_source"].startswith("retrained") for g in grp),
            })
        retr = [r for r in sims if r["model"]["model_source"].startswith("retrained")]
        if retr:
            d = [r["model"]["retrained_test_accuracy"] - r["model"]["record_test_accuracy"] for r in retr
                 if r["model"].get("record_test_accuracy") is not None]
            shas = sorted({r["model"].get("retrained_code", {}).get("training_py_sha1", "?") for r in retr})
            retr_note = (f" {len(retr)} of the {len(sims)} models were RETRAINED for this section (their run records "
                         f"keep no model), with the same spec and seed by the training code in the working tree "
                         f"(`training.py` SHA-1 {', '.join(shas)}); where that code differs from the one that made the "
                         f"record, the model differs: its test accuracy minus the record's is "
                         + (f"{np.mean(d) * 100:+.1f} points on average ({min(d) * 100:+.1f} to {max(d) * 100:+.1f})"
                            if d else "unknown") + ". The energy numbers are those of the simulated models.")
        else:
            retr_note = " Every simulated model is the one saved with its run record."
        L.append(f"\n*{ds['dataset']}, first {n_img} test images per model; class agreement: spiking class = reference "
                 "class." + retr_note + " Spikes: input (one per non-zero pixel, its level carried as a multiplier), excitatory (one "
                 "per winner in every layer, incl. the readout's decision). Feed-forward SOPs: spikes x existing "
                 "outgoing synapses (zero-level weights are no synapses). 'Equal on every image': the simulated "
                 "integer counts (input spikes, excitatory spikes, feed-forward SOPs) equal the analytic ones image "
                 "by image. Interneuron spikes, circuit SOPs (k-WTA E->I and I->E events) and neuron updates "
                 "(neurons x simulated time steps) exist only in the simulation.*\n")
        L.append("**Energy per image (nJ, chip level).**\n")
        L.append("| weight bits | act bits | HCS | k | Loihi, analytic counts | Loihi, simulated: feed-forward | "
                 "+ k-WTA circuit | + neuron updates | = total simulated | reference dense fp32 | reference, zeros "
                 "skipped, own precision (profile) | simulated / reference zeros skipped |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in out_rows:
            L.append(f"| {_bits(r['weight_bits'])} | {_bits(r['act_bits'])} | {'yes' if r['hcs'] else 'no'} | "
                     f"{r['k']:g}{'' if r['hcs'] else ' (off)'} | {r['loihi_analytic_pj'] / 1e3:,.1f} | "
                     f"{r['loihi_ff_sim_pj'] / 1e3:,.1f} | {r['loihi_circuit_pj'] / 1e3:,.1f} | "
                     f"{r['loihi_updates_pj'] / 1e3:,.1f} | {r['loihi_sim_pj'] / 1e3:,.1f} ± {r['loihi_sim_sd_pj'] / 1e3:,.1f} | "
                     f"{r['ref_dense_fp32_pj'] / 1e3:,.1f} | {r['ref_own_effective_pj'] / 1e3:,.3f} ({r['own_profile']}) | "
                     f"{r['loihi_sim_pj'] / r['ref_own_effective_pj']:,.0f}x |")
        prof = r0["profiles"]
        L.append(f"\n*Energy constants from `hcs_neuro/data/energy_profiles.toml`: Loihi 23.6 pJ per synaptic op, "
                 f"1.7 pJ per spike, 52 pJ per neuron update ({prof['loihi']}); reference: dense MACs at "
                 f"`cmos45_fp32` (4.6 pJ per MAC) and the non-zero products (zero activities and weights skipped) at "
                 f"the model's own precision (`hcs_neuro.measure.energy.own_precision_profile`: `cmos45_lowprec`, 0.1 pJ, an "
                 f"int32 add, when every weighted layer multiplies a binary operand; else `cmos45_int8`, 0.3 pJ per "
                 f"MAC; {prof['cmos45_fp32']}). Loihi, analytic counts = feed-forward SOPs and input + excitatory "
                 f"spikes of the reference (no circuit, no neuron updates); ± = sd over the {n_img} images "
                 f"{'(pooled over seeds) ' if len(seeds) > 1 else ''}of the per-image simulated energy. "
                 f"{r0['note']}.*\n")
        # figure: energy vs weight precision and vs k
        fig, axs = plt.subplots(1, 2, figsize=(12, 6.2))
        prec = [r for r in out_rows if r["k"] == 0.25 or not r["hcs"]]
        wbs = sorted({r["weight_bits"] for r in prec})
        colors = {(1, True): "tab:blue", (1, False): "tab:red", (2, True): "tab:green", (2, False): "tab:orange"}
        ax = axs[0]
        for (ab, hcs), color in colors.items():
            pts = [next((r for r in prec if (r["weight_bits"], r["act_bits"], r["hcs"]) == (wb, ab, hcs)), None)
                   for wb in wbs]
            if not any(pts):
                continue
            xs = [wb for wb, p in zip(wbs, pts) if p]
            ps = [p for p in pts if p]
            lab = f"act {ab} bit, {'HCS' if hcs else 'no HCS'}"
            ax.errorbar(xs, [p["loihi_sim_pj"] / 1e3 for p in ps], yerr=[p["loihi_sim_sd_pj"] / 1e3 for p in ps],
                        color=color, marker="o", ls="-", capsize=3, label=lab)
            ax.errorbar(xs, [p["loihi_analytic_pj"] / 1e3 for p in ps],
                        yerr=[p["loihi_analytic_sd_pj"] / 1e3 for p in ps], color=color, marker="^", ls="--",
                        capsize=3)
            ax.plot(xs, [p["ref_own_effective_pj"] / 1e3 for p in ps], color=color, marker="s", ls=":")
        ax.set_yscale("log")
        ax.set_xticks(wbs, [str(b) for b in wbs])
        ax.set_xlabel("weight precision (bits)")
        ax.set_ylabel("energy per image (nJ, chip level)")
        ax.set_title(f"{ds['dataset']}: energy vs weight precision (k = 0.25)", fontsize=9)
        from matplotlib.lines import Line2D

        leg1 = ax.legend(fontsize=6.5, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.14),
                         title="colour: activity precision, HCS", title_fontsize=7)
        ax.add_artist(leg1)
        styles = [Line2D([], [], color="k", ls="-", marker="o", label="spiking, simulated (Loihi)"),
                  Line2D([], [], color="k", ls="--", marker="^", label="spiking, analytic counts (Loihi)"),
                  Line2D([], [], color="k", ls=":", marker="s", label="reference, zeros skipped (45 nm, own precision)")]
        ax.legend(handles=styles, fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.36), ncol=2,
                  title=f"line: basis (error bars: sd over the {n_img} images)", title_fontsize=7)
        ax.grid(alpha=0.3, which="both")
        ax = axs[1]
        kr = sorted([r for r in out_rows if r["hcs"] and (r["weight_bits"], r["act_bits"]) == (2, 1)],
                    key=lambda r: r["k"])
        off = next((r for r in out_rows if not r["hcs"] and (r["weight_bits"], r["act_bits"]) == (2, 1)), None)
        if len(kr) > 1:
            ks = [r["k"] for r in kr]
            for key, sdk, label, color, ls in (("loihi_sim_pj", "loihi_sim_sd_pj", "spiking, simulated (Loihi)", "tab:green", "-"),
                                              ("loihi_analytic_pj", "loihi_analytic_sd_pj", "spiking, analytic counts (Loihi)", "tab:olive", "--"),
                                              ("ref_own_effective_pj", None, "reference, zeros skipped (45 nm int32 add)", "tab:blue", ":"),
                                              ("ref_dense_fp32_pj", None, "reference dense fp32 (45 nm)", "tab:gray", "-.")):
                ax.errorbar(ks, [r[key] / 1e3 for r in kr], yerr=[r[sdk] / 1e3 for r in kr] if sdk else None,
                            color=color, ls=ls, marker="o", capsize=3, label=label)
                if off:
                    ax.axhline(off[key] / 1e3, color=color, ls=ls, lw=0.8, alpha=0.6)
            ax.set_xscale("log", base=2)
            ax.set_xticks(ks, [f"{k:g}" for k in ks], fontsize=8)
            ax.set_yscale("log")
            ax.set_xlabel("k (fraction of the conv channels that win)")
            ax.set_ylabel("energy per image (nJ, chip level)")
            ax.set_title(f"{ds['dataset']}: energy vs k (ternary weights, binary activities;\nthin lines: no HCS)",
                         fontsize=9)
            ax.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2,
                      title=f"± sd over {n_img} images", title_fontsize=7)
            ax.grid(alpha=0.3, which="both")
        else:
            ax.set_axis_off()
            ax.text(0.5, 0.5, "k sweep not simulated", ha="center", va="center", transform=ax.transAxes)
        fig.tight_layout()
        F.save(fig, figdir / f"energy_sim_{tag}.png")
        plt.close(fig)
        L.append(f"![simulated energy](figures/energy_sim_{tag}.png)\n")
        n_eq = sum(r["counts_equal"] for r in out_rows)
        upd_share = [r["loihi_updates_pj"] / r["loihi_sim_pj"] for r in out_rows]
        ratio_ref = [r["loihi_sim_pj"] / r["ref_own_effective_pj"] for r in out_rows]
        s_ = (f"{len(out_rows)} models x {n_img} images: simulated counts (input spikes, excitatory spikes, "
              f"feed-forward SOPs) equal the analytic ones on every image in {n_eq} of {len(out_rows)} models; class "
              f"agreement {min(r['class_agreement'] for r in out_rows) * 100:.1f}–"
              f"{max(r['class_agreement'] for r in out_rows) * 100:.1f} %. Simulated Loihi energy "
              f"{min(r['loihi_sim_pj'] for r in out_rows) / 1e3:,.0f}–{max(r['loihi_sim_pj'] for r in out_rows) / 1e3:,.0f} nJ "
              f"per image, {min(upd_share) * 100:.0f}–{max(upd_share) * 100:.0f} % of it neuron updates (a property "
              f"of the simulated race schedule); the analytic count (no circuit, no updates) gives "
              f"{min(r['loihi_analytic_pj'] for r in out_rows) / 1e3:,.0f}–{max(r['loihi_analytic_pj'] for r in out_rows) / 1e3:,.0f} nJ; "
              f"the reference network with zeros skipped at its own precision needs "
              f"{min(ratio_ref):,.0f}–{max(ratio_ref):,.0f}x less than the simulated spiking network")
        on = next((r for r in out_rows if (r["weight_bits"], r["act_bits"], r["hcs"], r["k"]) == (2, 1, True, 0.25)), None)
        if on and off:
            s_ += (f"; ternary/binary with HCS (k = 0.25) vs without: simulated {on['loihi_sim_pj'] / 1e3:,.1f} vs "
                   f"{off['loihi_sim_pj'] / 1e3:,.1f} nJ (ratio {on['loihi_sim_pj'] / off['loihi_sim_pj']:.2f}), analytic "
                   f"{on['loihi_analytic_pj'] / 1e3:,.1f} vs {off['loihi_analytic_pj'] / 1e3:,.1f} nJ (ratio "
                   f"{on['loihi_analytic_pj'] / off['loihi_analytic_pj']:.2f})")
        L.append(f"Simulated energy, {ds['dataset']}: {s_}.\n")
        if n_eq < len(out_rows):
            L.append("Where the counts differ, the simulated winners differ from the reference's in some image-layer "
                     "(the SOP cross-check counts only image-layers whose winners agree: "
                     f"{sum(r['sop_mismatches'] for r in out_rows)} mismatches there).\n")
        verdicts.append(f"- Energy (simulated spiking runs), {ds['dataset']}: {s_}.")
        summary["datasets"].setdefault(name, {})["sim_energy"] = out_rows


def _pool_sd(grp, sd_key, mean_key) -> float:
    """SD of the per-image energy pooled over the models of a group (law of total variance)."""
    n = np.array([g["n_images"] for g in grp], float)
    m = np.array([g["energy_pj"]["loihi"][mean_key] for g in grp], float)
    v = np.array([g["energy_pj"][sd_key] for g in grp], float) ** 2
    mu = float((n * m).sum() / n.sum())
    tot = ((n - 1) * v).sum() + (n * (m - mu) ** 2).sum()
    return float(np.sqrt(tot / max(n.sum() - 1, 1)))


def _model_accuracies(grp):
    """Mean test accuracy of the simulated models and of their run records (None where unknown)."""
    used, recd = [], []
    for g in grp:
        m = g["model"]
        if m["model_source"].startswith("retrained"):
            used.append(m.get("retrained_test_accuracy"))
            recd.append(m.get("record_test_accuracy"))
        else:
            used.append(m.get("record_test_accuracy", g.get("record_test_accuracy")))
            recd.append(used[-1])
    used = [u for u in used if u is not None]
    recd = [r for r in recd if r is not None]
    return (float(np.mean(used)) if used else None, float(np.mean(recd)) if recd else None)
