"""Every repo path and Python name the docs write resolves, so the docs cannot drift from the tree.

Read: README.md, docs/*.md and benchmarks/README.md, outside fenced code blocks (commands, and the
README's Layout, which has its own test below), and the shipped configs' comments. Checked:

* ``zoomin.x.y``, in backticks or not: the longest importable prefix is a module and the rest
  resolves from it by getattr (``zoomin.config.run.TrainingConfig.lr`` too); a trailing call
  ``(...)`` is ignored;
* a path in backticks or a markdown link, and a plain-text path under one of the repo's top-level
  folders (``docs/method.md``): it exists, relative to the repo, the doc's folder, the package
  (``models/registry.py`` is ``src/zoomin/models/registry.py``) or ``tests/`` (docs/bad_input.md's
  convention); a bare ``name.py`` names a file somewhere in the repo;
* ``file.py`` (``symbol``, ...), ``file.py::test_name``, ``::test_name`` (the file named before it
  on the line) and ``RB``/``RI`` ``test_name`` (abbreviations a doc defines as ```RB` = `path```):
  the symbol is defined in the file (``Class.method`` too; ``*`` matches any characters).

Not checked, on purpose:

* what the workflow and the benchmarks write (paths under ``results/``, ``resources/``, ``logs/``,
  ``checkpoints/``, ``.snakemake/``, ``benchmarks/out/``): patterns of outputs, not repo files;
* placeholders stand for any text: ``<dataset>``, ``{a,b}``, ``*``, ``###``; a path with one must
  match at least one file, unless it is an output above;
* absolute paths and URLs (HDF5 groups such as ``/views/<image_id>``, system files, downloads);
* paths inside datasets and other repositories that do not start at one of this repo's folders
  (``Set1/annotations.txt``, ``lib/models.py``); those that do are listed in ``ELSEWHERE``.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib
import re
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "zoomin"
DOCS = [REPO / "README.md", REPO / "benchmarks" / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# The shipped configs' comments point to docs and name records the same way.
CONFIGS = [REPO / "config" / "config.yaml", REPO / "config" / "paper.yaml", REPO / "tests" / "configs" / "tiny_config.yaml"]

# Written by the workflow or the benchmarks (git-ignored), not part of the repo.
GENERATED = ("results", "resources", "logs", "checkpoints", ".snakemake", "benchmarks/out")
IGNORED_ROOTS = {".git", ".venv", "build", "dist", ".ruff_cache", ".pytest_cache"}

# Paths that start like one of this repo's folders but name a file of another repository.
ELSEWHERE = {
    "models/model_clam.py": "mahmoodlab/CLAM",
    "configs/aravindhm/trafficsigns_topk.py": "google-research ptopk_patch_selection",
    "MIL_train.py": "MIL-nature-medicine-2019",
    "MIL_test.py": "MIL-nature-medicine-2019",
    "train_camelyon.py": "facebookresearch/Needles-in-Haystacks",
    "image_classification.py": "facebookresearch/Needles-in-Haystacks",
}

SPAN = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
DOTTED = re.compile(r"^(zoomin(?:\.[A-Za-z_]\w*)+)(?:\(.*\))?$")
TEST_REF = re.compile(r"^(?P<path>[\w./-]+\.py)?::(?P<name>[\w.]+|\.\.\.)(?:\[.*\])?$")
SYMBOL = re.compile(r"^[A-Za-z_][\w.*]*(?:\(\))?$")
PLACEHOLDER = re.compile(r"<[^>]*>|\{[^}]*\}|\*|#+|\.\.\.")


def _prose(text: str) -> str:
    """``text`` without its fenced code blocks (line numbers kept)."""
    return FENCE.sub(lambda match: "\n" * match.group(0).count("\n"), text)


@cache
def _roots() -> frozenset[str]:
    names = {path.name for path in REPO.iterdir()} - IGNORED_ROOTS
    return frozenset(names | {path.name for path in PACKAGE.iterdir()} | {path.name for path in (REPO / "tests").iterdir()})


@cache
def _basenames() -> frozenset[str]:
    skip = set(GENERATED) | IGNORED_ROOTS
    return frozenset(
        path.name for path in REPO.rglob("*.py") if path.relative_to(REPO).parts[0] not in skip
    )


def _is_generated(path: str) -> bool:
    return any(path == root or path.startswith(root + "/") for root in GENERATED)


def _bases(doc: Path) -> list[Path]:
    """Where a relative path may start: the repo, the doc's folder, the package (docs write
    ``models/registry.py``) and tests/ (docs/bad_input.md writes ``real/test_...``)."""
    return [REPO, doc.parent, PACKAGE, REPO / "tests"]


def _candidates(path: str, doc: Path) -> list[Path]:
    """Files or folders ``path`` may name (its placeholders matched against the tree)."""
    path = path.split("#")[0].rstrip("/")
    if not path:
        return [doc]
    found = []
    for base in _bases(doc):
        if PLACEHOLDER.search(path):
            pattern = PLACEHOLDER.sub("*", path)
            found += list(base.glob(pattern))
        elif (base / path).exists():
            found.append(base / path)
    return found


def _looks_like_a_repo_path(text: str) -> bool:
    if " " in text or "://" in text or text.startswith(("/", "github.com/", "~")) or "=" in text:
        return False
    if "/" in text:
        return text.split("/")[0] in _roots()
    return bool(re.fullmatch(r"[\w.-]+\.(py|md|smk|yaml|toml)", text))


def _path_problem(text: str, doc: Path) -> str | None:
    """Why ``text`` names no repo path (None: it does, or it is not checked)."""
    if text in ELSEWHERE or _is_generated(text) or not _looks_like_a_repo_path(text):
        return None
    if "/" not in text and text.endswith(".py") and not PLACEHOLDER.search(text):
        return None if text in _basenames() or (doc.parent / text).exists() else "no such file in the repo"
    return None if _candidates(text, doc) else "no such path"


def _dotted_problem(name: str) -> str | None:
    """Why ``zoomin.x.y`` does not resolve (None: it does)."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(target, attribute):
                return f"{'.'.join(parts[:cut])} has no {'.'.join(parts[cut:])}"
            target = getattr(target, attribute)
        return None
    return "no such module"


@cache
def _defined(file: Path) -> frozenset[str]:
    """Names a Python file defines: top-level names, ``Class.member`` and every function's name."""
    tree = ast.parse(file.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(target.id for target in targets if isinstance(target, ast.Name))
        if isinstance(node, ast.ClassDef):
            for member in node.body:
                if isinstance(member, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.add(f"{node.name}.{member.name}")
                elif isinstance(member, ast.AnnAssign) and isinstance(member.target, ast.Name):
                    names.add(f"{node.name}.{member.target.id}")
    names.update(node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)))
    return frozenset(names)


def _symbol_problem(symbol: str, file: Path | None) -> str | None:
    if file is None:
        return f"`{symbol}`: no file named before it on the line"
    symbol = symbol.removesuffix("()")
    names = _defined(file)
    if any(fnmatch.fnmatchcase(name, symbol) for name in names):
        return None
    return f"`{symbol}` is not defined in {file.relative_to(REPO)}"


def _python_file(text: str, doc: Path) -> Path | None:
    if not text.endswith(".py") or text in ELSEWHERE or PLACEHOLDER.search(text):
        return None
    files = [path for path in _candidates(text, doc) if path.is_file()]
    return files[0] if files else None


def _abbreviations(text: str) -> dict[str, str]:
    """```RB` = `tests/reliability/test_bad_input.py``` -> {"RB": "tests/..."}."""
    return dict(re.findall(r"`([A-Z]{2,3})` = `([\w./-]+\.py)`", text))


def problems(doc: Path, text: str | None = None) -> list[tuple[int, str, str]]:
    """Every reference of ``doc`` (or of ``text`` read as ``doc``) that does not resolve, as
    ``(line, reference, why)``."""
    text = _prose(doc.read_text(encoding="utf-8") if text is None else text)
    abbreviations = {key: REPO / value for key, value in _abbreviations(text).items()}
    found = []
    for number, line in enumerate(text.splitlines(), start=1):

        def report(reference: str, why: str, number=number) -> None:
            found.append((number, reference, why))

        current: Path | None = None  # the Python file the line last named
        after_abbreviation = False
        position = 0
        for match in SPAN.finditer(line):
            span = match.group(1).strip()
            before = line[position : match.start()]
            position = match.end()
            words = re.findall(r"\b[A-Z]{2,3}\b", before)
            if words and words[-1] in abbreviations:
                current, after_abbreviation = abbreviations[words[-1]], True
            elif before.strip() not in ("", ",", "and") and not before.rstrip().endswith("("):
                after_abbreviation = False
            if (dotted := DOTTED.match(span)) is not None:
                if (why := _dotted_problem(dotted.group(1))) is not None:
                    report(span, why)
            elif (test := TEST_REF.match(span)) is not None:
                if test.group("path"):
                    current = _python_file(test.group("path"), doc)
                    if current is None:
                        report(span, "no such test file")
                        continue
                if test.group("name") != "..." and (why := _symbol_problem(test.group("name"), current)):
                    report(span, why)
            elif (file := _python_file(span, doc)) is not None:
                current = file
                after_abbreviation = False
            elif (why := _path_problem(span, doc)) is not None:
                report(span, why)
            elif after_abbreviation and re.fullmatch(r"test_\w+(\[.*\])?", span):
                if (why := _symbol_problem(span.split("[")[0], current)) is not None:
                    report(span, why)
        # `file.py` (`symbol`, `Class.method`, ...): the symbols are the file's
        for match in re.finditer(r"`([\w./-]+\.py)` \(([^()]*(?:\(\)[^()]*)*)\)", line):
            file = _python_file(match.group(1), doc)
            for symbol in SPAN.findall(match.group(2)):
                if file is not None and SYMBOL.match(symbol) and "/" not in symbol:
                    if (why := _symbol_problem(symbol, file)) is not None:
                        report(f"{match.group(1)} ({symbol})", why)
        for target in LINK.findall(line):
            if "://" not in target and not target.startswith(("#", "mailto:")):
                if not _candidates(target, doc):
                    report(f"link {target}", "no such path")
        # outside backticks: paths such as docs/method.md, and zoomin.x.y
        plain = SPAN.sub(" ", LINK.sub(" ", line))
        for path in re.findall(r"(?<![\w/.-])((?:docs|config|src|tests|benchmarks|workflow|profiles)/[\w./<>*-]*\w)", plain):
            if (why := _path_problem(path, doc)) is not None:
                report(path, why)
        for name in re.findall(r"(?<![\w/.])(zoomin(?:\.[A-Za-z_]\w*)+)", plain):
            if (why := _dotted_problem(name)) is not None:
                report(name, why)
    return found


@pytest.mark.parametrize("doc", DOCS + CONFIGS, ids=lambda doc: str(doc.relative_to(REPO)))
def test_every_path_and_name_a_doc_writes_resolves(doc):
    found = [f"{doc.relative_to(REPO)}:{line}: {reference}: {why}" for line, reference, why in problems(doc)]
    assert not found, "references that resolve to nothing (fix the doc, or see the module docstring):\n" + "\n".join(found)


def test_the_check_catches_each_kind_of_drift():
    """A made-up doc with stale references of each kind beside good ones: exactly the stale ones fail."""
    found = {reference for _, reference, _ in problems(REPO / "docs" / "made_up.md", SAMPLE)}
    assert found == {
        "zoomin.models.streaming",
        "zoomin.models.bags",
        "zoomin.config.run.TrainingConfig.learning_rate",
        "src/zoomin/spec.py",
        "models/streaming.py",
        "bags.py",
        "src/zoomin/models/zoomin_net.py (_positions)",
        "src/zoomin/models/zoomin_net.py (_centres)",
        "test_no_such_test",
        "test_config.py::test_bad_values_are_rejected_naming_the_key",
        "::test_bad_values_are_rejected_naming_the_key",
        "docs/nothing.md",
        "link nothing.md",
        "config/nothing_<x>.csv",
    }


SAMPLE = """\
`RB` = `tests/config/test_shipped_configs.py`.
Good: `zoomin.config.run.TrainingConfig`, `zoomin.config.load.schema()`, `results/<dataset>/views.h5`,
`src/zoomin/models/zoomin_net.py` (`represent`, `ZoomInNet.sample_subtiles`), [the method](method.md),
`config/paper_<table>.csv`, RB `test_every_allowed_restatement_is_still_one`, docs/method.md and
`tests/test_docs.py::test_every_path_and_name_a_doc_writes_resolves`, `::test_the_check_catches_each_kind_of_drift`.
Good too: `test_shipped_configs.py`, `lib/models.py`, `/views/<image_id>`, `models/model_clam.py`, `memory.py`.
Stale: zoomin.models.streaming, `zoomin.models.bags`, `zoomin.config.run.TrainingConfig.learning_rate`, `src/zoomin/spec.py`,
`models/streaming.py`, `bags.py`, `src/zoomin/models/zoomin_net.py` (`_positions`, `_centres`),
RB `test_no_such_test`, `test_config.py::test_bad_values_are_rejected_naming_the_key`, `::test_bad_values_are_rejected_naming_the_key`,
see docs/nothing.md and [this](nothing.md), `config/nothing_<x>.csv`.
"""


def _layout_paths(block: str) -> list[str]:
    """Repo paths of the README's Layout block. An entry at the margin is a repo path, one indented by
    two a path in the package (src/zoomin/), one indented further continues the list above it; in a
    list, a name without a folder is in the folder of the list's first entry."""
    paths: list[str] = []
    folder = ""
    for line in block.splitlines():
        indent = len(line) - len(line.lstrip())
        entries = re.split(r"\s{2,}", line.strip())[0]
        if not line.strip() or indent >= 8:  # a description continued
            continue
        base = "" if indent == 0 else "src/zoomin/"
        for position, entry in enumerate(item.strip() for item in entries.split(",")):
            if not entry or entry == "...":
                continue
            if position == 0 and indent <= 2:
                folder = entry.rsplit("/", 1)[0] + "/" if "/" in entry.rstrip("/") else ""
            paths.append(base + (entry if "/" in entry else folder + entry))
    return paths


def test_the_readme_layout_matches_the_tree():
    """Every path the README's Layout names exists, and it names every folder of the repo and every
    module and subpackage of the package."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    layout = re.search(r"^## Layout\s+```\n(.*?)^```", readme, re.S | re.M)
    assert layout is not None, "README.md has no Layout block"
    paths = _layout_paths(layout.group(1))
    missing = [path for path in paths if not list(REPO.glob(PLACEHOLDER.sub("*", path).rstrip("/")))]
    assert not missing, f"the README's Layout names paths that are not in the tree: {missing}"
    parts = [Path(path.rstrip("/")).parts for path in paths]
    named = {path[:1] for path in parts} | {path[:3] for path in parts if path[:2] == ("src", "zoomin")}
    folders = {
        (path.name,) for path in REPO.iterdir()
        if path.is_dir() and not path.name.startswith(".") and path.name not in IGNORED_ROOTS | set(GENERATED)
    }
    package = {
        ("src", "zoomin", path.name) for path in PACKAGE.iterdir()
        if (path.is_dir() and (path / "__init__.py").exists()) or (path.suffix == ".py" and path.name != "__init__.py")
    }
    left_out = sorted("/".join(parts) for parts in (folders | package) - named)
    assert not left_out, f"the README's Layout leaves out: {left_out}"


COMMIT = re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,12}\b")


@pytest.mark.parametrize(
    "doc", [doc for doc in DOCS if doc.name != "measurements.md"], ids=lambda doc: str(doc.relative_to(REPO))
)
def test_commit_hashes_are_in_the_measurement_log_only(doc):
    """Pages that describe the current tree point to docs/measurements.md for what a commit measured."""
    lines = [
        f"{number}: {', '.join(COMMIT.findall(line))}"
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), start=1)
        if COMMIT.search(line)
    ]
    assert not lines, f"{doc.relative_to(REPO)} names commits (move the measurement to docs/measurements.md): {lines}"
