"""ganad.bench.docs: every results table in the README and docs/ is its store's output (issue 17,
"a number in the docs cannot drift from its store")."""

from __future__ import annotations

from pathlib import Path

import pytest

from ganad.bench import docs
from ganad.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_results_table_in_the_docs_is_what_its_store_gives(page):
    assert docs.check(page, ROOT) == []


def test_the_readme_and_the_results_page_embed_store_tables():
    assert docs.blocks((ROOT / "README.md").read_text()), "the README's headline table is a checked block"
    assert len(docs.blocks((ROOT / "docs" / "results.md").read_text())) >= 10


def test_an_edited_number_is_named_and_write_restores_the_stores(tmp_path):
    text = (ROOT / "README.md").read_text()
    block = docs.blocks(text)[0]
    body = block["body"]
    edited = body.replace("0.5", "0.6", 1)
    assert edited != body
    page = tmp_path / "page.md"
    page.write_text(text[: block.start("body")] + edited + text[block.end("body") :])
    [line] = docs.check(page, ROOT)
    assert line.startswith(f"{page}:{text.count(chr(10), 0, block.start()) + 1}: ") and block["args"] in line
    assert docs.write(page, ROOT) == 1
    assert page.read_text() == text and docs.check(page, ROOT) == []


def test_a_block_must_print_markdown_to_the_page(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("<!-- ganad results docs/results/egbad-kdd99-cpu --format csv -->\n<!-- end -->\n")
    with pytest.raises(ConfigError, match="drop --output/--format"):
        docs.check(page, ROOT)
    assert docs.main([str(page), "--root", str(ROOT)]) == 2
