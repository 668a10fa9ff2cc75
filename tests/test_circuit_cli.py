"""``hcs-neuro circuit run|bench|plot`` end to end (small, numpy codegen)."""

from __future__ import annotations

import json



from hcs_neuro.cli import main  # noqa: E402


def test_run_given_drives_json(tmp_path, capsys):
    out = tmp_path / "run.json"
    rc = main(["circuit", "run", "lif_kwta", "--k", "2", "--drive", "0.1,0.9,0.5,0.905,0.3,0.2,0.89,0.4",
               "--json", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["winners"] == [[1, 3]] == res["reference_topk"]
    assert 0 < res["decision_latency_ms"][0] < 10
    assert "winners [1, 3]" in capsys.readouterr().out


def test_run_set_override_and_errors(capsys):
    assert main(["circuit", "run", "lif_kwta", "--hypercolumns", "3", "--n", "8", "--k", "1",
                 "--set", "refinement.max_levels=0", "--set", 'neuron.tau_m="2 ms"']) == 0
    assert main(["circuit", "run", "lif_kwta", "--set", "neuron.tau_m=5 mV"]) == 2
    assert "neuron.tau_m must be a time, got 5 mV" in capsys.readouterr().err
    assert main(["circuit", "run", "lif_kwta", "--k", "8", "--n", "8"]) == 2
    assert main(["circuit", "run", "nope_circuit"]) == 2


def test_bench_json_keys(tmp_path):
    out = tmp_path / "bench.json"
    assert main(["circuit", "bench", "lif_kwta", "--k", "1,2", "--n", "16", "--trials", "100",
                 "--noise", "0,0.5", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert len(res["results"]) == 4
    assert {r["k"] for r in res["results"]} == {1, 2}
    assert res["results"][0]["strict_agreement"] == 1.0


def test_plot_writes_png_and_pdf(tmp_path):
    assert main(["circuit", "plot", "lif_kwta", "--k", "2", "--n", "16", "--trials", "150",
                 "--out", str(tmp_path)]) == 0
    for stem in ("raster", "membrane", "interneuron", "latency_margin", "psychometric"):
        for ext in ("png", "pdf"):
            f = tmp_path / f"{stem}.{ext}"
            assert f.is_file() and f.stat().st_size > 1000
