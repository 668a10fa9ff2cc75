"""cpp_standalone: compile once, rerun with new drives and k through run_args (in a subprocess,
since cpp_standalone is a per-process device)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.standalone

SCRIPT = textwrap.dedent(
    """
    import json, os, sys, numpy as np
    from hcs_neuro.brian import b2
    # -O0: this test checks behaviour, not speed; unoptimised C++ compiles several times faster
    b2.prefs.codegen.cpp.extra_compile_args_gcc = ["-w", "-O0", "-std=c++11"]
    from hcs_neuro.core.circuit_file import load_circuit
    from hcs_neuro.brian.device import StandaloneCircuit
    from hcs_neuro.core.agreement import topk_mask as reference_topk
    H, N = 200, 16
    out = {}
    with StandaloneCircuit(load_circuit("lif_kwta"), H, N, 2, duration_ms=30, directory=sys.argv[1]) as sa:
        binary = os.path.join(sys.argv[1], "main")
        mtime = os.path.getmtime(binary)
        for rep, k in enumerate([2, 1, 4]):
            d = np.random.default_rng(rep).uniform(0, 1, (H, N))
            r = sa.run(d, k=k)
            out[f"exact_{rep}"] = bool((r["winners"] == reference_topk(d, k)).all())
            out[f"n_win_{rep}"] = int(r["winners"].sum())
        out["recompiled"] = os.path.getmtime(binary) != mtime
        out["compile_time_s"] = sa.compile_time_s
    # the process can build a runtime network afterwards
    from hcs_neuro.brian.hypercolumn import build_hypercolumns
    b2.prefs.codegen.target = "numpy"
    c = build_hypercolumns(load_circuit("lif_kwta"), 2, 8, 2, np.random.default_rng(0).uniform(0, 1, (2, 8)), monitors=())
    c.run(30)
    out["runtime_after"] = int(c.winners().sum())
    print(json.dumps(out))
    """
)


def test_compile_once_rerun_with_run_args(tmp_path):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "proj")], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["exact_0"] and out["exact_1"] and out["exact_2"]
    assert [out["n_win_0"], out["n_win_1"], out["n_win_2"]] == [400, 200, 800]  # k changed per run
    assert not out["recompiled"]
    assert out["runtime_after"] == 4
