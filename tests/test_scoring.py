"""ganad.scoring: `ganad score` streams folders in chunks (docs/guarantees.md, "Scoring streams")."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from PIL import Image

import ganad
from ganad import scoring

SRC = Path(ganad.__file__).parent


# == 7. scoring streams ======================================================================
def test_scoring_a_folder_streams_in_chunks(tmp_path, image_run, digits, monkeypatch):
    """Peak memory of the arrays scoring makes does not grow with the number of images.

    tracemalloc (NumPy arrays and Python objects) around ``score_paths`` for 64 and 320 images;
    the 320 scored in one chunk are the control showing that the measurement sees the arrays.
    What still grows with the folder is its file list and the CSV text (about 0.9 KB an image here,
    against 2.8 KB when every array is held at once).
    benchmarks/score_memory.py measures the whole process on 20,000 images.
    """
    x, _ = digits
    det = ganad.load(image_run)
    monkeypatch.setattr(scoring, "load", lambda run: det)  # loaded once, outside the measurement

    def peak(folder: Path, chunk: int) -> int:
        monkeypatch.setattr(scoring, "CHUNK", chunk)
        tracemalloc.start()
        try:
            text = scoring.score_paths(image_run, [folder], progress=False)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            assert len(text.splitlines()) == len(list(folder.iterdir())) + 1

    folders = {}
    for n in (64, 320):
        folders[n] = tmp_path / f"f{n}"
        folders[n].mkdir()
        for i in range(n):
            Image.fromarray(x[i]).save(folders[n] / f"{i}.png")
    small, big, control = peak(folders[64], 32), peak(folders[320], 32), peak(folders[320], 10**6)
    growth, unstreamed_growth = (big - small) / 256, (control - small) / 256  # bytes per extra image
    assert growth < 0.5 * unstreamed_growth, {"64": small, "320": big, "one chunk": control}
