"""Files in and out, without losing data: checked output paths, atomic writes, marked output
folders, and reading that turns decode and format errors into one-line :class:`HCSError`.

Every command uses these, so the rules hold everywhere:

* **Check outputs before the work.** :func:`check_output_file` and :func:`check_output_dir` are
  called when the arguments are parsed, before anything is loaded, trained or simulated: a
  folder where a file is expected, a file where a folder is expected, a wrong suffix, or a place
  that cannot be written is refused at once, naming the path.
* **Write atomically.** :func:`atomic_path` writes to a temporary name in the target's folder and
  renames it over the target only when the block succeeds; an exception or Ctrl-C leaves
  nothing behind (not even folders that were created for it), and after a Ctrl-C nothing is put
  in place even if the interrupt was swallowed on the way (:mod:`hcs_neuro.core.interrupt`).
* **Never delete what hcs-neuro did not write.** Output folders (:func:`atomic_dir`) carry a
  marker file, :data:`MARKER_NAME`, that lists the files hcs-neuro wrote there. An existing
  folder is replaced only when it is empty, or when the user passed ``--overwrite`` *and* the
  marker shows that hcs-neuro wrote everything in it; a folder holding anything else is refused.
  The current folder and its parents are never output folders.
* **Read defensively.** :func:`read_text`, :func:`read_toml` and :func:`read_json` bound the
  size read, decode UTF-8 strictly and map every OS, decode and syntax error to the caller's
  :class:`HCSError` subclass with the path in the message.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
import tomllib
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np

from hcs_neuro import __version__
from hcs_neuro.core import interrupt
from hcs_neuro.core.errors import ConfigError, HCSError, OutputError, ResourceError
from hcs_neuro.core.limits import format_bytes

__all__ = [
    "MARKER_NAME",
    "JSON_SUFFIXES",
    "FIGURE_SUFFIXES",
    "TEXT_LIMIT_BYTES",
    "check_output_file",
    "check_output_dir",
    "output_dir_marker",
    "prepare_output_dir",
    "atomic_path",
    "atomic_dir",
    "write_text_atomic",
    "write_json_atomic",
    "json_default",
    "read_bytes",
    "read_text",
    "read_toml",
    "read_json",
    "parse_toml",
]

#: File that marks a folder written by hcs-neuro (JSON: tool, kind, the files it wrote).
MARKER_NAME = ".hcs-neuro-output.json"
#: Suffixes of JSON output files (``--json``).
JSON_SUFFIXES = (".json",)
#: File types a figure may be written as (matplotlib picks the format from the suffix).
FIGURE_SUFFIXES = (".png", ".pdf", ".svg")
#: Largest text file (config, circuit, sweep spec, curve, record) read, in bytes.
TEXT_LIMIT_BYTES = 64 * 2 ** 20


# ---------------------------------------------------------------------------------------------
# output checks
# ---------------------------------------------------------------------------------------------


def _label(option: str | None, path) -> str:
    return f"{option} {str(path)!r}" if option else str(path)


def _existing_ancestor(path: Path) -> Path:
    """``path`` itself or its nearest existing ancestor (``.`` for a bare relative name)."""
    p = path if str(path) else Path(".")
    while not (p.exists() or p.is_symlink()):
        if p.parent == p:
            break
        p = p.parent
    return p


def _check_writable_folder(folder: Path, label: str) -> None:
    """The nearest existing ancestor of ``folder`` is a folder in which a file can be created."""
    base = _existing_ancestor(folder)
    if not base.is_dir():
        raise OutputError(f"{label}: {str(base)!r} is not a folder")
    try:  # the only reliable test (access() says yes to root on read-only mounts and modes)
        fd, probe = tempfile.mkstemp(prefix=".hcs-neuro-probe.", dir=base)
    except OSError as exc:
        raise OutputError(f"{label}: cannot write in folder {str(base)!r} ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)


def check_output_file(path, *, option: str | None = "--out", suffixes=None) -> Path:
    """Check, before any work, that ``path`` can be written as a file.

    Parameters
    ----------
    path : str or Path
        Output file.
    option : str, optional
        Command-line option (or field) that named it, for the message.
    suffixes : sequence of str, optional
        Allowed suffixes (``(".json",)``), compared case-insensitively.

    Raises
    ------
    OutputError
        Empty path, a folder or another non-regular file at ``path``, a suffix not allowed, or a
        folder in which nothing can be created.
    """
    label = _label(option, path)
    if path is None or not str(path).strip():
        raise OutputError(f"{option or 'output path'}: an empty path; name a file")
    p = Path(path)
    if p.is_dir():
        raise OutputError(f"{label}: is a folder; name a file" + (f" ({', '.join(suffixes)})" if suffixes else ""))
    if (p.exists() or p.is_symlink()) and not p.is_file():
        raise OutputError(f"{label}: exists and is not a regular file")
    if suffixes and p.suffix.lower() not in tuple(s.lower() for s in suffixes):
        raise OutputError(f"{label}: allowed file types {', '.join(suffixes)}")
    _check_writable_folder(p.parent, label)
    return p


def output_dir_marker(path) -> dict | None:
    """The marker of a folder hcs-neuro wrote (its parsed JSON), or None."""
    marker = Path(path) / MARKER_NAME
    if not marker.is_file():
        return None
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or data.get("written_by") != "hcs-neuro" or not isinstance(data.get("files"), list):
        return None
    return data


def _listed_files(root: Path) -> list[str]:
    """Every file below ``root`` as a relative POSIX path (folders are implied)."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir())


def _foreign_entries(path: Path, marker: dict) -> list[str]:
    """Files below ``path`` that its marker does not list (what hcs-neuro did not write)."""
    ours = set(marker.get("files", [])) | {MARKER_NAME}
    return [f for f in _listed_files(path) if f not in ours]


def _is_cwd_or_parent(path: Path) -> bool:
    here = Path.cwd().resolve()
    target = path.resolve()
    return target == here or target in here.parents


def check_output_dir(path, *, option: str | None = "--out", overwrite: bool = False,
                     kind: str | None = None) -> Path:
    """Check, before any work, that ``path`` may become (or be replaced by) an output folder.

    Allowed: a path that does not exist (its parent folders are created on success), an empty
    folder, or with ``overwrite`` a folder that hcs-neuro wrote (its marker lists every file in
    it; with ``kind`` given, the marker's kind must match).

    Raises
    ------
    OutputError
        A file at ``path``; the current folder or one above it; a non-empty folder hcs-neuro did
        not write or that holds files it did not write; an hcs-neuro folder without
        ``overwrite``; a place where nothing can be created.
    """
    label = _label(option, path)
    if path is None or not str(path).strip():
        raise OutputError(f"{option or 'output folder'}: an empty path; name a folder")
    p = Path(path)
    if _is_cwd_or_parent(p):
        raise OutputError(f"{label}: the current folder or a folder above it cannot be an output folder "
                          "(it would be replaced); name a new folder, e.g. report/")
    if (p.exists() or p.is_symlink()) and not p.is_dir():
        raise OutputError(f"{label}: exists and is not a folder; hcs-neuro does not replace a file with a folder")
    if p.is_dir() and any(p.iterdir()):
        marker = output_dir_marker(p)
        if marker is None:
            raise OutputError(f"{label}: the folder exists, is not empty and was not written by hcs-neuro "
                              f"(no {MARKER_NAME}); nothing was changed: name a new or empty folder")
        foreign = _foreign_entries(p, marker)
        if foreign:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise OutputError(f"{label}: the folder holds files hcs-neuro did not write ({shown}); nothing was "
                              "changed: move them or name another folder")
        if kind is not None and marker.get("kind") != kind:
            raise OutputError(f"{label}: the folder holds an hcs-neuro {marker.get('kind')} output, not a {kind}; "
                              "name another folder")
        if not overwrite:
            raise OutputError(f"{label}: the folder exists (an earlier hcs-neuro {marker.get('kind', 'output')}); "
                              "pass --overwrite to replace it, or name a new folder")
    _check_writable_folder(p.parent if not p.is_dir() else p, label)
    return p


def _write_marker(folder: Path, kind: str, files: list[str]) -> None:
    data = {"written_by": "hcs-neuro", "version": __version__, "kind": kind,
            "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "files": files}
    (folder / MARKER_NAME).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def prepare_output_dir(path, *, option: str | None = "--out", kind: str) -> Path:
    """Create (or reuse) a folder that hcs-neuro fills over time, such as a resumable sweep.

    A new or empty folder is created and marked; an existing folder must carry the marker of the
    same ``kind`` (then it is reused as it is: resuming adds to it). Files added later are not
    listed in the marker; such folders are never replaced or deleted by hcs-neuro.

    Raises
    ------
    OutputError
        A file at ``path``, the current folder or a parent, a non-empty folder of another origin
        or kind, or a place where nothing can be created.
    """
    label = _label(option, path)
    p = Path(path)
    if p.is_dir() and any(p.iterdir()):
        marker = output_dir_marker(p)
        if marker is None or marker.get("kind") != kind:
            what = "was not written by hcs-neuro" if marker is None else f"holds an hcs-neuro {marker.get('kind')}"
            raise OutputError(f"{label}: the folder exists, is not empty and {what}; nothing was changed: "
                              f"name a new or empty folder for the {kind}")
        return p
    check_output_dir(p, option=option, kind=kind)
    created = _mkdirs(p)
    try:
        _write_marker(p, kind, [])
    except OSError as exc:
        _remove_created(created)
        raise OutputError(f"{label}: cannot write in the folder ({exc.strerror or exc})") from None
    return p


# ---------------------------------------------------------------------------------------------
# atomic writes
# ---------------------------------------------------------------------------------------------


def _mkdirs(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; return the folders created (outermost first)."""
    missing = []
    p = folder
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    created = []
    for d in reversed(missing):
        d.mkdir()
        created.append(d)
    return created


def _remove_created(created: list[Path]) -> None:
    """Remove folders made by :func:`_mkdirs` (innermost first) if they are still empty."""
    for d in reversed(created):
        with contextlib.suppress(OSError):
            d.rmdir()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` if the block succeeds.

    ``suffix`` defaults to the target's own suffix, so libraries that insist on an extension
    (``np.savez`` appends ``.npz``, matplotlib picks the format from it) keep working. Folders
    created for the file are removed again when the block fails.

    Raises
    ------
    OutputError
        The folder cannot be created or written, or ``path`` is a folder.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{str(path)!r}: is a folder; expected a file path")
    suffix = path.suffix if suffix is None else suffix
    try:
        created = _mkdirs(path.parent)
    except OSError as exc:
        raise OutputError(f"{str(path)!r}: cannot create its folder ({exc.strerror or exc})") from None
    tmp = None
    ok = False
    try:  # from the moment the temporary file exists, so that an interrupt cannot strand it
        try:
            fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{suffix}", dir=path.parent)
        except OSError as exc:
            raise OutputError(f"{str(path)!r}: cannot write in its folder ({exc.strerror or exc})") from None
        tmp = Path(name)
        os.close(fd)
        yield tmp
        if tmp.exists():  # mkstemp creates 0600; give the result the usual umask-based mode
            os.chmod(tmp, 0o666 & ~_umask())
        interrupt.check()  # interrupted work never puts a result in place
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise OutputError(f"{str(path)!r}: cannot write ({exc.strerror or exc})") from None
        ok = True
    finally:
        if tmp is not None and tmp.exists():
            tmp.unlink()
        if not ok:
            _remove_created(created)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, *, overwrite: bool = False, kind: str = "output",
               option: str | None = "--out") -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; it becomes ``path`` if the block succeeds.

    The folder gets a marker (:data:`MARKER_NAME`) listing every file written into it. An
    existing ``path`` is replaced only when :func:`check_output_dir` allows it (empty, or an
    hcs-neuro folder of the same ``kind`` with ``overwrite``); the old folder's listed files are
    then deleted and nothing else (a file that appeared in it meanwhile keeps the old folder,
    renamed, and a warning names it).

    Raises
    ------
    OutputError
        See :func:`check_output_dir`.
    """
    path = Path(path)
    check_output_dir(path, option=option, overwrite=overwrite, kind=kind)
    try:
        created = _mkdirs(path.parent)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as exc:
        raise OutputError(f"{_label(option, path)}: cannot create the folder ({exc.strerror or exc})") from None
    ok = False
    try:
        yield tmp
        _write_marker(tmp, kind, _listed_files(tmp))
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700
        interrupt.check()  # interrupted work never puts a result in place
        if path.is_dir():
            old_marker = output_dir_marker(path)
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old)  # rename(2) over the empty placeholder folder
            os.replace(tmp, path)
            _delete_listed(old, old_marker)
        else:
            os.replace(tmp, path)
        ok = True
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if not ok:
            _remove_created(created)


def _delete_listed(folder: Path, marker: dict | None) -> None:
    """Delete the files ``marker`` lists (and the marker) from ``folder``, then the emptied
    folders; keep anything else and say where."""
    for rel in (marker or {}).get("files", []) + [MARKER_NAME]:
        f = folder / rel
        if f.is_file() or f.is_symlink():
            f.unlink()
    for d in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            d.rmdir()
    try:
        folder.rmdir()
    except OSError:
        warnings.warn(f"{folder}: files that hcs-neuro did not write appeared in the replaced folder; "
                      "they were kept here", stacklevel=3)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json_atomic(path: str | os.PathLike, obj) -> Path:
    """Write ``obj`` as indented, key-sorted JSON to ``path`` atomically."""
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=json_default) + "\n")


def json_default(obj):
    """``json.dumps(default=...)`` for NumPy scalars and arrays and paths."""

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------


def read_bytes(path, *, what: str = "file", error: type[HCSError] = ConfigError,
               limit: int = TEXT_LIMIT_BYTES) -> bytes:
    """The bytes of ``path``, at most ``limit`` of them.

    Raises
    ------
    HCSError (``error``)
        Missing, a folder, unreadable.
    ResourceError
        Larger than ``limit``.
    """
    p = Path(path)
    try:
        if p.is_dir():
            raise error(f"{p}: is a folder; expected a {what}")
        size = p.stat().st_size
        if size > limit:
            raise ResourceError(f"{p}: {format_bytes(size)}, larger than the {format_bytes(limit)} a {what} may be")
        with open(p, "rb") as fh:
            data = fh.read(limit + 1)
    except HCSError:
        raise
    except FileNotFoundError:
        raise error(f"{p}: {what} not found") from None
    except OSError as exc:
        raise error(f"{p}: cannot read the {what} ({exc.strerror or exc})") from None
    if len(data) > limit:  # a file that grew, or a device
        raise ResourceError(f"{p}: larger than the {limit} bytes a {what} may be")
    return data


def _decode(data: bytes, source: str, what: str, error: type[HCSError]) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = data[exc.start:exc.start + 1]
        raise error(f"{source}: the {what} is not UTF-8 text (byte 0x{bad.hex()} at offset {exc.start}); "
                    "save it as UTF-8") from None


def read_text(path, *, what: str = "file", error: type[HCSError] = ConfigError,
              limit: int = TEXT_LIMIT_BYTES) -> str:
    """The UTF-8 text of ``path`` (strict decoding), with every failure as ``error`` naming the file."""
    text = _decode(read_bytes(path, what=what, error=error, limit=limit), str(path), what, error)
    if "\x00" in text:
        raise error(f"{path}: the {what} contains NUL bytes; it is not a text file")
    return text


def parse_toml(text: str, source: str, *, what: str = "TOML file", error: type[HCSError] = ConfigError) -> dict:
    """Parse TOML ``text``; a syntax error becomes ``error`` naming ``source`` and the line."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{source}: the {what} is not valid TOML: {exc}") from None
    except RecursionError:
        raise error(f"{source}: the {what} nests too deeply") from None


def read_toml(path, *, what: str = "TOML file", error: type[HCSError] = ConfigError) -> dict:
    """A TOML file as a dict; unreadable, non-UTF-8 or malformed files raise ``error`` naming it."""
    return parse_toml(read_text(path, what=what, error=error), str(path), what=what, error=error)


def read_json(path, *, what: str = "JSON file", error: type[HCSError] = ConfigError, expect: type | None = dict,
              limit: int = TEXT_LIMIT_BYTES):
    """A JSON file, parsed; with ``expect`` its top level must be of that type (default: an object)."""
    text = read_text(path, what=what, error=error, limit=limit)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{path}: the {what} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise error(f"{path}: the {what} nests too deeply") from None
    if expect is not None and not isinstance(data, expect):
        names = {dict: "an object", list: "a list"}
        raise error(f"{path}: the {what} must hold {names.get(expect, expect.__name__)} at the top level, "
                    f"not {type(data).__name__}")
    return data
