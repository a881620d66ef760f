"""ganad.bench.docs: every results table in the README and docs/ is its store's output (issue 17,
"a number in the docs cannot drift from its store")."""

from __future__ import annotations

import ast
import re
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


MODELS_DIR = ROOT / "src" / "ganad" / "models"
CODE_REF = re.compile(r"`(\w+\.py): ([^`]+)`")
SYMBOL = re.compile(r'defaults\["(?P<key>\w+)"\]|(?P<name>\w+)(?:\.(?P<member>\w+))?')


def _names_in(body: list[ast.stmt]) -> set[str]:
    """Functions, classes and assigned names defined directly in a module or class body."""
    names: set[str] = set()
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def _defaults_keys(tree: ast.Module) -> set[str]:
    """The keys of the one ``defaults`` dict a model file's class defines (``dict(k=...)`` or ``{"k": ...}``)."""
    found = []
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        for node in cls.body:
            target = node.target if isinstance(node, ast.AnnAssign) else getattr(node, "targets", [None])[0]
            if isinstance(target, ast.Name) and target.id == "defaults" and node.value is not None:
                value = node.value
                if isinstance(value, ast.Call):
                    found.append({k.arg for k in value.keywords if k.arg})
                elif isinstance(value, ast.Dict):
                    found.append({k.value for k in value.keys if isinstance(k, ast.Constant)})
    assert len(found) == 1, f"expected one model class with a defaults dict, found {len(found)}"
    return found[0]


def _missing_code_references(text: str, models_dir: Path) -> list[str]:
    """Each `FILE.py: SYMBOL` reference in ``text`` whose symbol ``models_dir/FILE.py`` does not define."""
    missing = []
    for file, symbol in CODE_REF.findall(text):
        ref = f"{file}: {symbol}"
        path = models_dir / file
        match = SYMBOL.fullmatch(symbol)
        if not path.is_file() or match is None:
            missing.append(f'{ref} (no such file, or not SYMBOL / Class.member / defaults["key"])')
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        if match["key"]:
            ok = match["key"] in _defaults_keys(tree)
        elif match["member"]:
            classes = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == match["name"]]
            ok = bool(classes) and match["member"] in _names_in(classes[0].body)
        else:
            ok = match["name"] in _names_in(tree.body)
        if not ok:
            missing.append(ref)
    return missing


def test_every_code_reference_in_models_md_names_a_symbol_that_exists() -> None:
    """docs/models.md maps each paper equation to the code that implements it. Line numbers went stale
    as the files changed, so the page cites `FILE.py: Class.method` or `FILE.py: defaults["key"]`
    instead: a rename or removal of the cited symbol fails here rather than leaving a dead pointer,
    and no `FILE.py:NUMBER` (or a bare `NUMBER-NUMBER` continuing one) may come back."""
    text = (ROOT / "docs" / "models.md").read_text()
    assert len(CODE_REF.findall(text)) >= 30, "the page's code references are no longer in `FILE.py: SYMBOL` form"
    assert _missing_code_references(text, MODELS_DIR) == []
    assert re.findall(r"`[\w./]+\.py:\s*\d[\d, -]*`", text) == [], "line-number references are back"
    assert re.findall(r"`\d+(?:-\d+)?`", text) == [], "bare line numbers continuing a code reference are back"
