"""The results table of docs/studies/network.md ("Biophysical networks"): one row per JSON written
by ``analysis/studies/network_bio.py``; pieces of one run (``--start``) are merged by image count
(every metric below is a mean over images or over images x hypercolumns, so the merge is exact;
latency percentiles are the image-weighted mean of the pieces' percentiles and marked ~).

Usage::

    python analysis/studies/network_bio_table.py docs/data/network_bio/*.json
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict


def _row(parts: list) -> dict:
    n = sum(p["n_images"] for p in parts)

    def mean(f):
        return sum(f(p) * p["n_images"] for p in parts) / n

    layers = range(len(parts[0]["layers"]) - 1)
    return {
        "n": n, "pieces": len(parts),
        "class": mean(lambda p: p["class_agreement"]), "acc": mean(lambda p: p["spiking_accuracy"]),
        "ref": mean(lambda p: p["reference_accuracy"]),
        "strict": min(mean(lambda p, i=i: p["layers"][i]["conditional_agreement_strict"]) for i in layers),
        "tol": min(mean(lambda p, i=i: p["layers"][i]["conditional_agreement_tie_tolerant"]) for i in layers),
        "over": max(mean(lambda p, i=i: p["selection"][i]["over_selection"]) for i in layers),
        "under": max(mean(lambda p, i=i: p["selection"][i]["under_selection"]) for i in layers),
        "lat50": mean(lambda p: p["latency_ms_median"]), "lat95": mean(lambda p: p["latency_ms_p95"]),
        "spk": mean(lambda p: p["exc_spikes_per_neuron_per_image"]),
        "ff": mean(lambda p: p["sops_feedforward_per_image"]), "circ": mean(lambda p: p["sops_circuit_per_image"]),
        "wall": sum(p["study_wall_s"] for p in parts), "compile": parts[0]["compile_time_s"],
    }


def main(paths) -> None:
    groups = defaultdict(list)
    for path in paths:
        d = json.load(open(path))
        key = (d["model"], d["plan"]["circuit"], re.sub(r"_from\d+\.json$", ".json", path))
        groups[key].append(d)
    print("| model (images) | circuit | class agreement | spiking / reference accuracy | cond. strict / tie-tol. "
          "(min layer) | over / under (max layer) | latency median / p95 (ms) | spikes / neuron | SOPs ff / circuit "
          "per image | wall (compile) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for (model, circuit, _), parts in sorted(groups.items()):
        r = _row(parts)
        approx = "~" if r["pieces"] > 1 else ""
        print(f"| `{model}` ({r['n']}) | `{circuit}` | **{100 * r['class']:.2f} %** | {100 * r['acc']:.2f} / "
              f"{100 * r['ref']:.2f} % | {100 * r['strict']:.2f} / {100 * r['tol']:.2f} % | {100 * r['over']:.2f} / "
              f"{100 * r['under']:.2f} % | {r['lat50']:.1f} / {approx}{r['lat95']:.1f} | {r['spk']:.3f} | "
              f"{r['ff']:,.0f} / {r['circ']:,.0f} | {r['wall'] / 60:.1f} min ({r['compile']:.0f} s) |")


if __name__ == "__main__":
    main(sys.argv[1:])
