"""Helpers the guarantee tests share (test_reliability, test_checkpoint, test_atomic, test_engine, test_scoring)."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, settings
from PIL import Image

from ganad.cli import main


def props(examples: int) -> settings:
    """Hypothesis settings here: no deadline (a loaded CI machine), function-scoped tmp_path reused."""
    return settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


CSV_COLUMNS = ["duration", "protocol", "src_bytes", "dst_bytes", "count", "srv_count", "label"]


def csv_table(rows: list[list[str]]) -> list[list[str]]:
    """KDD rows as a user's CSV: six columns (one categorical) and a label; 'normal.' traffic is the anomaly."""
    return [[r[0], r[1], r[4], r[5], r[22], r[23], "attack" if r[-1] == "normal." else "ok"] for r in rows]


def write_csv(path: Path, table: list[list[str]], header: list[str] = CSV_COLUMNS) -> Path:
    path.write_text("\n".join(",".join(r) for r in [header, *table]) + "\n")
    return path


def ganad_main(*args: str) -> tuple[int, str]:
    """``ganad ARGS`` in this process: (exit status, standard error).

    The same code path as the ``ganad`` script without the interpreter start-up that would
    make each case cost seconds; an exception escaping ``main`` (a traceback for a user)
    fails the test. tests/test_cli.py and the payload test below run real processes.
    """
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(list(args))
    return code, err.getvalue()


def one_line_error(*args: str) -> str:
    """A user error on the command line: exit 2 and exactly one line ``ganad: error: ...``, no traceback."""
    code, err = ganad_main(*args)
    assert code == 2, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ganad: error: "), err
    return lines[0]


def one_line_error_in_a_process(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "ganad.cli", *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ganad: error: "), proc.stderr
    return lines[0]


def png_bytes(arr: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()
