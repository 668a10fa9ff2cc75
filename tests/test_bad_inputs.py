"""Bad input, bad output paths, oversized files and Ctrl-C: one case (or several) per root cause.

Every failing case asserts the same contract (README "Errors and safety"):

* exit status 2, and exactly one stderr line ``hcs-neuro: error: ...`` naming the file, field
  or value (the ``names`` of the case), with no traceback;
* **no change to the file system**: the test folder (including the user's own files) is
  snapshotted before and after (paths, sizes, modification times, modes), and nothing is left in
  a private temporary folder either.

Interrupt cases run the real command in a process group and send SIGINT to the group, as a
terminal's Ctrl-C does: exit 130, nothing written. Memory bombs run under an address-space cap
(RLIMIT_AS) so that a loader that allocates what a file declares fails the test instead of the
machine.
"""

from __future__ import annotations

import gzip
import json
import os
import resource
import signal
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from hcs_neuro.cli import main
from hcs_neuro.core.io import MARKER_NAME

REPO = Path(__file__).resolve().parent.parent
CIRCUIT = REPO / "circuits" / "lif_kwta.toml"
DIGITS_CONFIG = REPO / "models" / "configs" / "digits.toml"
SHIPPED_MODEL = REPO / "models" / "digits_hcs.npz"


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def snapshot(root: Path) -> dict:
    """Everything below ``root``: relative path -> (is folder, size, mtime_ns, mode)."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        out[p.relative_to(root).as_posix()] = (p.is_dir(), st.st_size, st.st_mtime_ns, st.st_mode)
    return out


def one_error_line(err: str, *names: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got:\n{err}"
    assert lines[0].startswith("hcs-neuro: error: "), lines[0]
    assert "Traceback" not in err
    for name in names:
        assert name in lines[0], f"{name!r} not named in: {lines[0]}"
    return lines[0]


@pytest.fixture
def work(tmp_path, monkeypatch):
    """A working folder (the cwd) holding a user's own files, which no command may touch."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mydata").mkdir()
    (tmp_path / "mydata" / "thesis.txt").write_text("four years of work\n")
    (tmp_path / "notes.txt").write_text("mine\n")
    return tmp_path


def refuse(work: Path, capsys, argv, *names) -> str:
    """Run ``hcs-neuro argv`` in-process: exit 2, one error line naming ``names``, no change."""
    before = snapshot(work)
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert rc == 2, f"exit {rc}; stdout:\n{out}\nstderr:\n{err}"
    line = one_error_line(err, *names)
    assert snapshot(work) == before, "the file system changed"
    return line


def write_idx(path: Path, array: np.ndarray, type_code: int = 0x08) -> Path:
    """An IDX file (gzip-compressed if the name ends in .gz)."""
    dtype = {0x08: ">u1", 0x0D: ">f4"}[type_code]
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(struct.pack(">I", n) for n in array.shape)
    raw = header + np.asarray(array, dtype=dtype).tobytes()
    path.write_bytes(gzip.compress(raw, mtime=0) if path.suffix == ".gz" else raw)
    return path


def idx_folder(root: Path, n: int = 12, *, images=None, labels=None) -> Path:
    """A folder with the four IDX files of an 8x8, 10-class dataset (fits ``digits_hcs``)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (n, 8, 8)) if images is None else images
    labs = rng.integers(0, 10, n) if labels is None else labels
    for split in ("train", "t10k"):
        write_idx(root / f"{split}-images-idx3-ubyte", imgs, 0x0D if np.asarray(imgs).dtype.kind == "f" else 0x08)
        write_idx(root / f"{split}-labels-idx1-ubyte", labs)
    return root


def save_npz_members(path: Path, members: dict) -> Path:
    """A zip of .npy members written by hand (to craft headers NumPy would never write)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(f"{name}.npy", data)
    return path


def npy_bytes(array) -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(array), allow_pickle=False)
    return buf.getvalue()


def npy_header_only(shape, dtype="<i8") -> bytes:
    """A .npy header that declares ``shape`` followed by a few bytes of data only."""
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue() + b"\0" * 64


def shipped_members() -> dict:
    """The shipped digits model's members as raw .npy bytes (to edit one and write them back)."""
    with zipfile.ZipFile(SHIPPED_MODEL) as zf:
        return {n[:-4]: zf.read(n) for n in zf.namelist()}


def run_cli(args, *, cwd: Path, env_extra=None, timeout=240, preexec=None):
    """The real command in a subprocess with a private TMPDIR: (exit status, stdout, stderr)."""
    tmp = cwd / ".private_tmp"
    tmp.mkdir(exist_ok=True)
    env = dict(os.environ, TMPDIR=str(tmp), MPLBACKEND="Agg", **(env_extra or {}))
    proc = subprocess.run([sys.executable, "-m", "hcs_neuro", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, preexec_fn=preexec)
    return proc.returncode, proc.stdout, proc.stderr


def interrupt_cli(args, *, cwd: Path, ready, timeout=240, env_extra=None):
    """Start the command in its own process group, wait until ``ready(stdout so far)`` holds,
    send SIGINT to the whole group (a terminal's Ctrl-C); return (exit status, stdout, stderr)."""
    import threading

    tmp = cwd / ".private_tmp"
    tmp.mkdir(exist_ok=True)
    env = dict(os.environ, TMPDIR=str(tmp), MPLBACKEND="Agg", PYTHONUNBUFFERED="1", **(env_extra or {}))
    proc = subprocess.Popen([sys.executable, "-m", "hcs_neuro", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    t0 = time.monotonic()
    try:
        while not ready("".join(chunks)) and proc.poll() is None:
            assert time.monotonic() - t0 < timeout, "the command never became ready to interrupt"
            time.sleep(0.1)
        assert proc.poll() is None, f"the command ended before it could be interrupted:\n{proc.stderr.read()}"
        os.killpg(proc.pid, signal.SIGINT)
        err = proc.stderr.read()
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    reader.join(timeout=10)
    return proc.returncode, "".join(chunks), err


def memory_cap(nbytes: int):
    def preexec():
        resource.setrlimit(resource.RLIMIT_AS, (nbytes, nbytes))
    return preexec


# ---------------------------------------------------------------------------------------------
# 1. data loss: output folders
# ---------------------------------------------------------------------------------------------


def test_a_foreign_folder_is_never_replaced(work, capsys):
    refuse(work, capsys, ["energy", "digits_hcs", "--dataset", "digits", "--analytic", "--n-images", "5",
                          "--out", "mydata"], "mydata", "not written by hcs-neuro")
    # --overwrite does not change that: it replaces only folders hcs-neuro wrote
    refuse(work, capsys, ["energy", "digits_hcs", "--dataset", "digits", "--analytic", "--n-images", "5",
                          "--out", "mydata", "--overwrite"], "mydata", "not written by hcs-neuro")
    assert (work / "mydata" / "thesis.txt").read_text() == "four years of work\n"


@pytest.mark.parametrize("target", [".", "..", "./", str(Path.cwd().anchor)])
def test_the_current_folder_and_its_parents_are_never_output_folders(work, capsys, target):
    refuse(work, capsys, ["validate", "digits_hcs", "--dataset", "digits", "--out", target, "--overwrite"],
           "current folder")


def test_an_existing_file_is_not_replaced_by_a_folder(work, capsys):
    refuse(work, capsys, ["demo", "--out", "notes.txt", "--overwrite"], "notes.txt", "not a folder")
    refuse(work, capsys, ["circuit", "plot", "lif_kwta", "--out", "notes.txt"], "notes.txt", "not a folder")


def test_overwrite_replaces_only_a_folder_that_holds_nothing_but_hcs_neuro_output(work, capsys):
    argv = ["energy", "digits_hcs", "--dataset", "digits", "--analytic", "--n-images", "4", "--out", "e"]
    assert main(argv) == 0
    marker = json.loads((work / "e" / MARKER_NAME).read_text())
    assert marker["kind"] == "energy" and "energy.json" in marker["files"]
    refuse(work, capsys, argv, "e", "--overwrite")  # exists: the user must ask
    assert main(argv + ["--overwrite"]) == 0  # replaced: it holds only what hcs-neuro wrote
    (work / "e" / "my_notes.md").write_text("added by the user")
    refuse(work, capsys, argv + ["--overwrite"], "my_notes.md", "did not write")
    assert (work / "e" / "my_notes.md").read_text() == "added by the user"
    # a folder of another kind is not replaced either
    (work / "e" / "my_notes.md").unlink()
    refuse(work, capsys, ["circuit", "plot", "lif_kwta", "--out", "e", "--overwrite"], "energy")


# ---------------------------------------------------------------------------------------------
# 2. output paths checked before the work
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv, names", [
    (["evaluate", "digits_hcs", "--json", "mydata"], ["mydata", "is a folder"]),
    (["evaluate", "digits_hcs", "--json", "report.txt"], ["report.txt", ".json"]),
    (["train", "--config", DIGITS_CONFIG, "--out", "/proc/hcs-neuro/m.npz"], ["/proc/hcs-neuro/m.npz", "cannot write"]),
    (["train", "--config", DIGITS_CONFIG, "--out", "model.pt"], ["model.pt", ".npz"]),
    (["train", "--config", DIGITS_CONFIG, "--out", "m.npz", "--curve", "mydata"], ["mydata", "is a folder"]),
    (["plot", "curve", REPO / "docs" / "data" / "fashion_curves" / "shadow_seed4.json", "--out", "c.txt"],
     ["c.txt", ".png"]),
    (["circuit", "run", "lif_kwta", "--json", "notes.txt/x.json"], ["notes.txt", "not a folder"]),
    (["sweep", REPO / "analysis" / "sweeps" / "tau_x_noise.toml", "--out", "notes.txt"], ["notes.txt", "not a folder"]),
    (["sweep", REPO / "analysis" / "sweeps" / "tau_x_noise.toml", "--out", "mydata"], ["mydata", "not written by"]),
    (["validate", "digits_hcs", "--dataset", "digits", "--json", ""], ["--json", "empty path"]),
])
def test_output_paths_are_refused_before_any_work(work, capsys, argv, names):
    refuse(work, capsys, argv, *names)


# ---------------------------------------------------------------------------------------------
# 3. non-UTF-8 and corrupt files
# ---------------------------------------------------------------------------------------------


def test_non_utf8_text_files_name_the_file(work, capsys):
    latin1 = work / "latin1.toml"
    latin1.write_bytes(DIGITS_CONFIG.read_bytes().replace(b"# The embedded default", b"# Caf\xe9 default"))
    refuse(work, capsys, ["train", "--config", latin1, "--out", "m.npz"], "latin1.toml", "UTF-8", "0xe9")
    binary = work / "binary.toml"
    binary.write_bytes(bytes(range(256)) * 4)
    refuse(work, capsys, ["circuit", "run", binary], "binary.toml", "UTF-8")
    spec = work / "spec.toml"
    spec.write_bytes(b"[sweep]\nname = \"caf\xe9\"\n")
    refuse(work, capsys, ["sweep", spec], "spec.toml", "UTF-8")
    curve = work / "curve.json"
    curve.write_bytes(b"\xff\xfe{\x00}")
    refuse(work, capsys, ["plot", "curve", curve, "--out", "c.png"], "curve.json", "UTF-8")
    nul = work / "nul.toml"
    nul.write_bytes(b"name = \"x\"\n\x00\x00")
    refuse(work, capsys, ["train", "--config", nul, "--out", "m.npz"], "nul.toml", "NUL")


def test_corrupt_results_tables(work, capsys):
    pq = work / "results.parquet"
    pq.write_bytes(b"PAR1" + bytes(range(200)) + b"PAR1")
    refuse(work, capsys, ["plot", "sweep", pq, "--x", "k", "--y", "strict_agreement", "--out", "p.png"],
           "results.parquet", "not a readable results table")
    csv = work / "results.csv"
    csv.write_bytes(b"seed,k\n\xff\xfe,1\n")
    refuse(work, capsys, ["plot", "sweep", csv, "--x", "k", "--y", "y", "--out", "p.png"], "results.csv", "UTF-8")
    other = work / "other.csv"
    other.write_text("a,b\n1,2\n")
    refuse(work, capsys, ["plot", "sweep", other, "--x", "a", "--y", "b", "--out", "p.png"], "other.csv", "seed")


def test_corrupt_gzip_idx_files_are_data_errors(work, capsys):
    """Damage a compressed IDX file at many places: every one is a one-line DataError (a random
    byte flip whose stream still inflates is caught by the CRC, the size check or zlib)."""
    folder = idx_folder(work / "idx")
    good = gzip.compress((folder / "t10k-images-idx3-ubyte").read_bytes(), mtime=0)
    (folder / "t10k-images-idx3-ubyte").unlink()
    target = folder / "t10k-images-idx3-ubyte.gz"
    for pos in range(12, len(good) - 2, max(1, (len(good) - 14) // 12)):
        bad = bytearray(good)
        bad[pos] ^= 0x5A
        target.write_bytes(bytes(bad))
        refuse(work, capsys, ["evaluate", "digits_hcs", "--dataset", "idx", "--data-dir", folder],
               "t10k-images-idx3-ubyte.gz")
    target.write_bytes(good[: len(good) // 2])  # truncated download
    refuse(work, capsys, ["evaluate", "digits_hcs", "--dataset", "idx", "--data-dir", folder], "truncated")


def test_corrupt_manifest_is_refused_before_training(work, capsys):
    (work / "MANIFEST.json").write_text("{not json")
    refuse(work, capsys, ["train", "--config", DIGITS_CONFIG, "--epochs", "1", "--train-subset", "32",
                          "--out", "m.npz", "--manifest", "MANIFEST.json", "--quiet"], "MANIFEST.json", "not valid JSON")
    (work / "MANIFEST.json").write_text('{"models": [1, 2]}')
    refuse(work, capsys, ["train", "--config", DIGITS_CONFIG, "--epochs", "1", "--train-subset", "32",
                          "--out", "m.npz", "--manifest", "MANIFEST.json", "--quiet"], "MANIFEST.json", "models")


# ---------------------------------------------------------------------------------------------
# 4. size limits: estimate first, refuse with the estimate
# ---------------------------------------------------------------------------------------------


def test_model_members_declaring_huge_arrays_are_refused_unread(work, capsys):
    members = shipped_members()
    bomb = dict(members, **{"layer0_weight_levels": npy_header_only((10 ** 6, 10 ** 6))})
    save_npz_members(work / "bomb.npz", bomb)
    refuse(work, capsys, ["evaluate", work / "bomb.npz"], "bomb.npz", "layer0_weight_levels", "shape")
    version = dict(members, format_version=npy_header_only((10 ** 12,)))
    save_npz_members(work / "version.npz", version)
    refuse(work, capsys, ["evaluate", work / "version.npz"], "version.npz", "format_version")


def test_an_unused_member_that_inflates_to_gigabytes_is_not_read(work):
    """A model with an extra member of 1 GiB of zeros (1 MiB compressed) loads under an address-space
    cap of 512 MiB on top of what the same command needs without it: the member is never inflated."""
    import zlib

    members = shipped_members()
    path = work / "padded.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(f"{name}.npy", data)
        with zf.open("junk.npy", "w", force_zip64=True) as fh:
            fh.write(npy_header_only((2 ** 27,))[:-64])
            chunk = bytes(2 ** 24)
            for _ in range(64):
                fh.write(chunk)
    assert path.stat().st_size < 16 * 2 ** 20 and zlib  # small on disk
    base = _baseline_address_space(work)
    rc, out, err = run_cli(["evaluate", path, "--limit", "5", "--quiet"], cwd=work,
                           preexec=memory_cap(base + 2 ** 29))
    assert rc == 0, err
    assert "accuracy" in out


def _baseline_address_space(work: Path) -> int:
    """Peak virtual memory of the same command on the shipped model (no cap)."""
    code = ("import resource, sys\nfrom hcs_neuro.cli import main\n"
            "rc = main(['evaluate', 'digits_hcs', '--limit', '5', '--quiet'])\n"
            "print(open('/proc/self/status').read())\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True, text=True, timeout=240)
    peak = [line for line in proc.stdout.splitlines() if line.startswith("VmPeak:")]
    assert peak, proc.stderr
    return int(peak[0].split()[1]) * 1024


def test_idx_headers_declaring_huge_data_are_refused(work, capsys):
    folder = idx_folder(work / "idx")
    header = bytes([0, 0, 0x08, 3]) + struct.pack(">III", 10 ** 9, 28, 28)
    (folder / "t10k-images-idx3-ubyte").write_bytes(header + bytes(64))
    line = refuse(work, capsys, ["evaluate", "digits_hcs", "--dataset", "idx", "--data-dir", folder],
                  "t10k-images-idx3-ubyte")
    assert "truncated" in line or "memory" in line
    (folder / "t10k-images-idx3-ubyte").unlink()
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + bytes(8 * 28 * 28), mtime=0))
    refuse(work, capsys, ["evaluate", "digits_hcs", "--dataset", "idx", "--data-dir", folder],
           "t10k-images-idx3-ubyte.gz", "memory", "HCS_NEURO_MAX_MEMORY")


def test_a_gzip_idx_file_is_inflated_only_as_far_as_asked(work, capsys, monkeypatch):
    """With --limit, only that many images are read: a file that declares 10**7 8x8 images but
    holds 20 evaluates its first 12 (the labels file declares 12)."""
    folder = idx_folder(work / "idx", n=12)
    (folder / "t10k-images-idx3-ubyte").unlink()
    header = bytes([0, 0, 0x08, 3]) + struct.pack(">III", 10 ** 7, 8, 8)
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + bytes(20 * 64), mtime=0))
    monkeypatch.setenv("HCS_NEURO_MAX_MEMORY", "100M")  # the whole file would need 640 MB
    assert main(["evaluate", "digits_hcs", "--dataset", "idx", "--data-dir", str(folder), "--limit", "12",
                 "--quiet"]) == 0
    refuse(work, capsys, ["evaluate", "digits_hcs", "--dataset", "idx", "--data-dir", folder],
           "memory", "100 MiB")


@pytest.mark.parametrize("layers, names", [
    ('[[layers]]\ntype = "conv2d"\nchannels = 1000000\nkernel = 3\n', ["channels = 1000000", "65536"]),
    ('[[layers]]\ntype = "conv2d"\nchannels = 60000\nkernel = 3\n[[layers]]\ntype = "conv2d"\nchannels = 60000\n'
     'kernel = 3\n', ["memory", "HCS_NEURO_MAX_MEMORY"]),
    ('[[layers]]\ntype = "conv2d"\nchannels = 8\nkernel = 99999999\n', ["kernel = 99999999"]),
])
def test_architectures_that_cannot_fit_are_refused(work, capsys, layers, names):
    cfg = work / "huge.toml"
    cfg.write_text('name = "huge"\n[input]\nshape = [1, 8, 8]\n' + layers
                   + '[[layers]]\ntype = "linear"\nchannels = 10\n[training]\ndataset = "digits"\n')
    refuse(work, capsys, ["train", "--config", cfg, "--out", "m.npz"], "huge.toml", *names)


def test_sweep_grids_and_runs_that_would_never_end_are_refused(work, capsys):
    spec = work / "big.toml"
    base = ('[sweep]\nname = "big"\nmetrics = ["strict_agreement"]\n[target]\nkind = "circuit"\n'
            'circuit = "lif_kwta"\ntrials = 10\n')
    spec.write_text(base + '[parameters]\n"neuron.tau_m" = {start = "1 ms", stop = "2 ms", num = 100000000}\n')
    refuse(work, capsys, ["sweep", spec], "big.toml", "100,000", "HCS_NEURO_MAX_POINTS")
    spec.write_text(base.replace('name = "big"', 'name = "big"\nseeds = {start = 0, num = 1000000000}')
                    + '[parameters]\nk = [1, 2]\n')
    refuse(work, capsys, ["sweep", spec], "seeds", "HCS_NEURO_MAX_POINTS")
    spec.write_text(base + '[parameters]\nk = {start = 1, stop = 1e12, step = 1}\n')
    refuse(work, capsys, ["sweep", spec], "big.toml", "HCS_NEURO_MAX_POINTS")
    long = work / "long.toml"
    long.write_text(CIRCUIT.read_text().replace('duration = "30 ms"', 'duration = "1e9 s"', 1))
    refuse(work, capsys, ["circuit", "run", long], "neuron updates", "HCS_NEURO_MAX_WORK")
    refuse(work, capsys, ["circuit", "bench", "lif_kwta", "--trials", "100000000", "--batch", "100"],
           "neuron updates", "HCS_NEURO_MAX_WORK")


# ---------------------------------------------------------------------------------------------
# 5. command-line numbers, range-checked where parsed
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv, names", [
    (["circuit", "run", "lif_kwta", "--duration", "-5"], ["--duration", "-5"]),
    (["circuit", "run", "lif_kwta", "--duration", "0"], ["--duration", "0"]),
    (["circuit", "run", "lif_kwta", "--duration", "nan"], ["--duration", "nan"]),
    (["circuit", "run", "lif_kwta", "--duration", "20 mV"], ["--duration", "20 mV"]),
    (["circuit", "run", "lif_kwta", "--dt", "5", "--duration", "3"], ["--dt 5", "shorter"]),
    (["circuit", "run", "lif_kwta", "--dt", "inf"], ["--dt", "inf"]),
    (["circuit", "run", "lif_kwta", "--n", "-4"], ["--n", "-4"]),
    (["circuit", "run", "lif_kwta", "--n", "0"], ["--n", "0"]),
    (["circuit", "run", "lif_kwta", "--hypercolumns", "0"], ["--hypercolumns", "0"]),
    (["circuit", "run", "lif_kwta", "--hypercolumns", "-3"], ["--hypercolumns", "-3"]),
    (["circuit", "run", "lif_kwta", "--seed", "-1"], ["--seed", "-1"]),
    (["circuit", "run", "lif_kwta", "--seed", "99999999999999999999"], ["--seed", "99999999999999999999"]),
    (["circuit", "run", "lif_kwta", "--drive", "0.1,nan,0.3"], ["--drive", "nan"]),
    (["circuit", "run", "lif_kwta", "--drive", "0.5"], ["--drive", "two or more"]),
    (["circuit", "run", "lif_kwta", "--k", "40"], ["k = 40"]),
    (["circuit", "bench", "lif_kwta", "--batch", "0"], ["--batch", "0"]),
    (["circuit", "bench", "lif_kwta", "--k", ","], ["--k", "','"]),
    (["circuit", "bench", "lif_kwta", "--k", "1,x"], ["--k", "'x'"]),
    (["circuit", "bench", "lif_kwta", "--noise", "-0.5"], ["--noise", "-0.5"]),
    (["circuit", "bench", "lif_kwta", "--tie-tol", "-1"], ["--tie-tol", "-1"]),
    (["circuit", "bench", "lif_kwta", "--trials", "0"], ["--trials", "0"]),
    (["circuit", "run", "lif_kwta", "--set", "inhibition.w_ie=-3"], ["inhibition.w_ie", ">= 0"]),
    (["circuit", "run", "cond_kwta", "--set", "neuron.g_L=-25 nS"], ["neuron.g_L", "conductance"]),
    (["circuit", "run", "lif_kwta", "--set", "neuron.tau_m=0 ms"], ["neuron.tau_m", "> 0"]),
    (["validate", "digits_hcs", "--dataset", "digits", "--tie-tol", "1.5"], ["--tie-tol", "1.5"]),
    (["validate", "digits_hcs", "--dataset", "digits", "--n-jobs", "0"], ["--n-jobs", "0"]),
    (["simulate", "digits_hcs", "--dataset", "digits", "--chunk", "-2"], ["--chunk", "-2"]),
    (["energy", "digits_hcs", "--dataset", "digits", "--block", "0"], ["--block", "0"]),
    (["demo", "--n-images", "0"], ["--n-images", "0"]),
    (["train", "--config", DIGITS_CONFIG, "--out", "m.npz", "--lr", "nan"], ["--lr", "nan"]),
    (["train", "--config", DIGITS_CONFIG, "--out", "m.npz", "--batch-size", "0"], ["--batch-size", "0"]),
    (["train", "--config", DIGITS_CONFIG, "--out", "m.npz", "--threads", "0"], ["--threads", "0"]),
    (["sweep", REPO / "analysis" / "sweeps" / "tau_x_noise.toml", "--workers", "0"], ["--workers", "0"]),
    (["plot", "curve", REPO / "docs" / "data" / "fashion_curves" / "shadow_seed4.json", "--offset", "-2",
      "--out", "c.png"], ["--offset", "-2"]),
    (["evaluate", "digits_hcs", "--limit", "0"], ["--limit", "0"]),
])
def test_numbers_are_range_checked_where_parsed(work, capsys, argv, names):
    refuse(work, capsys, argv, *names)


# ---------------------------------------------------------------------------------------------
# 6. model files: no type assumptions
# ---------------------------------------------------------------------------------------------


def test_malformed_model_files(work, capsys):
    np.save(work / "array.npy", np.arange(10))
    (work / "array.npy").rename(work / "array.npz")
    refuse(work, capsys, ["evaluate", work / "array.npz"], "array.npz", "not a readable model")
    members = shipped_members()
    save_npz_members(work / "v.npz", dict(members, format_version=npy_bytes(np.str_("1"))))
    refuse(work, capsys, ["evaluate", work / "v.npz"], "v.npz", "format_version", "dtype")
    save_npz_members(work / "a.npz", dict(members, architecture_json=npy_bytes(np.str_("[1, 2, 3]"))))
    refuse(work, capsys, ["evaluate", work / "a.npz"], "a.npz", "architecture_json", "JSON object")
    save_npz_members(work / "m.npz", dict(members, metadata_json=npy_bytes(np.str_("{broken"))))
    refuse(work, capsys, ["evaluate", work / "m.npz"], "m.npz", "metadata_json")
    save_npz_members(work / "o.npz", dict(members, layer0_weight_levels=npy_bytes(np.zeros(3, dtype=float)[:, None])))
    refuse(work, capsys, ["evaluate", work / "o.npz"], "o.npz", "layer0_weight_levels")
    missing = {k: v for k, v in members.items() if k != "layer2_bias_levels"}
    save_npz_members(work / "x.npz", missing)
    refuse(work, capsys, ["evaluate", work / "x.npz"], "x.npz", "layer2_bias_levels", "missing")
    refuse(work, capsys, ["evaluate", "mydata"], "mydata")


# ---------------------------------------------------------------------------------------------
# 7. Brian2 errors from user equations
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("old, new, names", [
    ('threshold_expr = "v > v_threshold"', 'threshold_expr = "v > "', ["neuron.threshold_expr"]),
    ("dv/dt = s * (v_rest - v +", "dv/dt = s * (v_rest - v * tau_m +", ["inconsistent units"]),
    ('threshold_expr = "v > v_threshold"', 'threshold_expr = "frobnicate(v) > v_threshold"', ["frobnicate"]),
    ('tau_m = "1 ms"', 'tau_m = "20 kV^999"', ["neuron.tau_m", "power"]),
    ('on_pre_ie = "g_inh_post += w_ie"', 'on_pre_ie = "g_inh_post += w_ie * 1 mV"', ["lif_bad.toml"]),
])
def test_equations_brian2_rejects_are_one_line(work, capsys, old, new, names):
    bad = work / "lif_bad.toml"
    text = CIRCUIT.read_text()
    assert old in text
    bad.write_text(text.replace(old, new, 1))
    refuse(work, capsys, ["circuit", "run", bad], "lif_bad.toml", *names)


# ---------------------------------------------------------------------------------------------
# 8. Ctrl-C: nothing written, exit 130, no traceback
# ---------------------------------------------------------------------------------------------


def test_ctrl_c_during_a_benchmark_writes_nothing(work):
    """Brian2 would turn Ctrl-C into "stop after this step" and the cut-short batch would be
    scored and written; here the run is interrupted and nothing is written."""
    before = snapshot(work)
    rc, out, err = interrupt_cli(["circuit", "bench", "lif_kwta", "--k", "1", "--trials", "3000000", "--batch",
                                  "20000", "--json", "bench.json"], cwd=work,
                                 ready=lambda out: "noise_mV" in out)  # the table header: running
    assert rc == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert not (work / "bench.json").exists()
    assert _changed(before, snapshot(work)) == []


def test_ctrl_c_during_a_plot_leaves_no_folder(work):
    before = snapshot(work)
    rc, out, err = interrupt_cli(["circuit", "plot", "lif_kwta", "--trials", "2000000", "--out", "plots"],
                                 cwd=work, ready=lambda out: "simulating" in out)
    assert rc == 130, err
    assert "Traceback" not in err
    assert _changed(before, snapshot(work)) == []  # no plots/, no hidden temporary folder


@pytest.mark.dask
def test_ctrl_c_during_a_sweep_is_quiet_and_resumable(work):
    """Ctrl-C reaches the whole process group; the workers ignore it, the client closes the
    cluster: one line, no worker tracebacks; finished points stay for the next run."""
    (work / "slowtarget.py").write_text(
        "import time\n\ndef f(params, seed):\n    time.sleep(1.0)\n    return {'y': params['x'] + seed}\n")
    spec = work / "slow.toml"
    spec.write_text('[sweep]\nname = "slow"\nmetrics = ["y"]\nout = "sw"\n[target]\nkind = "python"\n'
                    'function = "slowtarget:f"\n[parameters]\nx = {start = 0, stop = 59, step = 1}\n')
    rc, out, err = interrupt_cli(["sweep", spec, "--workers", "2"], cwd=work,
                                 ready=lambda out: len(list((work / "sw" / "points").glob("*.json"))) >= 2
                                 if (work / "sw" / "points").is_dir() else False,
                                 env_extra={"PYTHONPATH": str(work)})
    assert rc == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert [line for line in err.splitlines() if line.strip()] == ["hcs-neuro: interrupted (nothing written)"]
    assert len(list((work / "sw" / "points").glob("*.json"))) >= 2


def _changed(before: dict, after: dict) -> list:
    """Paths added, removed or changed, ignoring the private TMPDIR of the subprocess (checked
    separately: it must be empty)."""
    keep = lambda d: {k: v for k, v in d.items() if not k.startswith(".private_tmp")}  # noqa: E731
    b, a = keep(before), keep(after)
    return sorted(set(b) ^ set(a) | {k for k in set(a) & set(b) if a[k] != b[k]})


# ---------------------------------------------------------------------------------------------
# 9. nothing written before a later failure
# ---------------------------------------------------------------------------------------------


def test_an_unreachable_scheduler_writes_nothing(work, capsys, monkeypatch):
    import hcs_neuro.sweep.runner as runner

    monkeypatch.setattr(runner, "CONNECT_TIMEOUT", "2s")
    spec = work / "s.toml"
    spec.write_text('[sweep]\nname = "s"\nmetrics = ["strict_agreement"]\nout = "sw"\n[target]\n'
                    'kind = "circuit"\ncircuit = "lif_kwta"\ntrials = 4\n[parameters]\nk = [1, 2]\n')
    refuse(work, capsys, ["sweep", spec, "--scheduler", "tcp://127.0.0.1:9"], "--scheduler", "cannot connect")
    assert not (work / "sw").exists()


def test_a_bad_manifest_fails_before_the_model_is_written(work, capsys):
    (work / "M.json").write_text("[]")
    refuse(work, capsys, ["train", "--config", DIGITS_CONFIG, "--epochs", "1", "--train-subset", "16", "--out",
                          "m.npz", "--manifest", "M.json", "--quiet"], "M.json", "object")
    assert not (work / "m.npz").exists()


# ---------------------------------------------------------------------------------------------
# 10. other combinations and data
# ---------------------------------------------------------------------------------------------


def test_data_problems_are_named(work, capsys):
    empty = idx_folder(work / "empty", n=0, images=np.zeros((0, 8, 8)), labels=np.zeros(0))
    refuse(work, capsys, ["evaluate", "digits_hcs", "--dataset", "idx", "--data-dir", empty], "no images")
    refuse(work, capsys, ["simulate", "digits_hcs", "--dataset", "idx", "--data-dir", empty], "no images")
    nan = np.full((6, 8, 8), 0.5, dtype=np.float32)
    nan[2, 3, 3] = np.nan
    folder = idx_folder(work / "nan", n=6, images=nan)
    refuse(work, capsys, ["evaluate", "digits_hcs", "--dataset", "idx", "--data-dir", folder], "not finite")
    folder = idx_folder(work / "labels", n=6, labels=np.array([0, 1, 2, 12, 4, 5]))
    refuse(work, capsys, ["evaluate", "digits_hcs", "--dataset", "idx", "--data-dir", folder], "labels up to 12")
    folder = idx_folder(work / "big", n=4, images=np.zeros((4, 28, 28)))
    refuse(work, capsys, ["evaluate", "digits_hcs", "--dataset", "idx", "--data-dir", folder], "(1, 28, 28)")
    refuse(work, capsys, ["evaluate", "digits_hcs", "--dataset", "idx", "--data-dir", ""], "--data-dir")
    refuse(work, capsys, ["evaluate", "digits_hcs", "--dataset", "fashion-mnist", "--data-dir", "mydata"],
           "mydata", "not found")


def test_plot_and_sweep_combinations(work, capsys):
    sweep_dir = REPO / "analysis" / "sweeps"
    spec = work / "dots.toml"
    spec.write_text((sweep_dir / "tau_x_noise.toml").read_text().replace('name = "tau_x_noise"', 'name = ".."'))
    refuse(work, capsys, ["sweep", spec], "dots.toml", "name = '..'")
    spec.write_text((sweep_dir / "tau_x_noise.toml").read_text().replace('name = "tau_x_noise"', 'name = "a/../b"'))
    refuse(work, capsys, ["sweep", spec], "name = 'a/../b'")
    table = work / "t.csv"
    table.write_text("point_id,k,seed,y,run_time_s,cpu_time_s,error\na,1,0,0.5,1,1,\nb,2,0,0.7,1,1,\n")
    refuse(work, capsys, ["plot", "sweep", table, "--x", "k", "--y", "y", "--hue", "k", "--out", "p.png"],
           "--x and --hue", "'k'")
    refuse(work, capsys, ["plot", "sweep", table, "--x", "k", "--y", "y", "--out", "p.txt"], "p.txt", ".png")


def test_a_sweep_point_file_that_is_not_an_object_is_computed_again(work, capsys):
    from hcs_neuro.sweep import expand_grid, load_sweep_spec

    (work / "fast.py").write_text("def f(params, seed):\n    return {'y': params['x'] * 2 + seed}\n")
    spec_path = work / "fast.toml"
    spec_path.write_text('[sweep]\nname = "fast"\nmetrics = ["y"]\nout = "sw"\n[target]\nkind = "python"\n'
                         'function = "fast:f"\n[parameters]\nx = [1, 2]\n')
    sys.path.insert(0, str(work))
    try:
        from distributed import Client, LocalCluster

        from hcs_neuro.sweep import run_sweep

        spec = load_sweep_spec(spec_path)
        with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cl, \
                Client(cl) as client:
            run_sweep(spec, client=client, progress=False)
            point = expand_grid(spec)[0]
            path = work / "sw" / "points" / f"{point.point_id}.json"
            path.write_text("[1, 2, 3]")
            res = run_sweep(spec, client=client, progress=False)
    finally:
        sys.path.remove(str(work))
    assert res.n_computed == 1 and res.n_errors == 0
    assert json.loads(path.read_text())["metrics"] == {"y": 2.0}


# ---------------------------------------------------------------------------------------------
# 11. leftovers and noise
# ---------------------------------------------------------------------------------------------


def test_no_brian2_files_are_left_in_tmp(work):
    """A failing and a successful circuit run leave nothing in their TMPDIR (Brian2's debug log and
    script copy are switched off)."""
    bad = work / "bad.toml"
    bad.write_text(CIRCUIT.read_text().replace("dv/dt = s * (v_rest - v +", "dv/dt = s * (v_rest - v * tau_m +", 1))
    rc, out, err = run_cli(["circuit", "run", bad], cwd=work)
    assert rc == 2 and "Traceback" not in err
    rc, out, err = run_cli(["circuit", "run", "lif_kwta", "--k", "2", "--n", "8"], cwd=work)
    assert rc == 0, err
    assert sorted(p.name for p in (work / ".private_tmp").iterdir()) == []


def test_progress_is_quiet_when_stderr_is_not_a_terminal(work):
    """A short training run with stderr to a pipe: no progress bar redrawn per step."""
    rc, out, err = run_cli(["train", "--config", DIGITS_CONFIG, "--epochs", "2", "--train-subset", "256",
                            "--batch-size", "8", "--threads", "1", "--out", "m.npz"], cwd=work)
    assert rc == 0, err
    assert len(err.splitlines()) <= 4, err  # 64 steps; a tqdm bar would write 64+ updates
    assert "\r" not in err
