"""The package layout described in docs/ARCHITECTURE.md holds: layers, no cycles, no private imports across
modules, project imports at module level, and every sub-package importable alone in a fresh process."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "monai_ext"
SUBPACKAGES = [
    "monai_ext.io",
    "monai_ext.bundle_helpers",
    "monai_ext.phantoms",
    "monai_ext.datalists",
    "monai_ext.transforms",
    "monai_ext.metrics",
    "monai_ext.losses",
    "monai_ext.networks",
    "monai_ext.inferers",
    "monai_ext.engines",
    "monai_ext.handlers",
    "monai_ext.apps",
    "monai_ext.apps.covid19_ct_fewshot_seg",
    "monai_ext.apps.ctsgan_chest_ct_synthesis",
    "monai_ext.apps.us_variational_style_transfer",
    "monai_ext.apps.vae_manifold_augmentation",
    "monai_ext.cli",
]


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _is_project_import(node: ast.ImportFrom | ast.Import) -> bool:
    if isinstance(node, ast.ImportFrom):
        return bool(node.level) or (node.module or "").split(".")[0] == "monai_ext"
    return any(a.name.split(".")[0] == "monai_ext" for a in node.names)


def test_import_contract_holds():
    """The layers and the independence of the methods, as .importlinter states them (import-linter)."""
    exe = shutil.which("lint-imports")
    if exe is None:
        pytest.fail("lint-imports not found: install the test extra (pip install -e '.[test]')")
    res = subprocess.run([exe, "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "0 broken" in res.stdout


def test_subpackages_import_alone_and_in_any_order_in_fresh_processes():
    """Each first import of a sub-package runs ``monai_ext/__init__`` (which imports every layer but ``cli``), so a
    cycle or a missing import shows whichever sub-package comes first; a process per order and a few single
    imports (bottom, an app, top) cover it without paying for a fresh interpreter per sub-package."""
    programs = {
        "bottom-up": "; ".join(f"import {n}" for n in SUBPACKAGES),
        "top-down": "; ".join(f"import {n}" for n in SUBPACKAGES[::-1]),
    }
    for name in ("monai_ext.io", "monai_ext.apps.vae_manifold_augmentation", "monai_ext.cli"):
        programs[f"{name} alone"] = f"import {name}"
    procs = {
        k: subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for k, code in programs.items()
    }
    failures = []
    for k, proc in procs.items():
        _, err = proc.communicate(timeout=300)
        if proc.returncode != 0:
            failures.append(f"{k}:\n{err[-3000:]}")
    assert not failures, "\n".join(failures)


def test_no_module_imports_another_modules_private_names():
    offenders = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and _is_project_import(node):
                private = [a.name for a in node.names if a.name.startswith("_")]
                if private:
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno} imports {private}")
    assert not offenders, "\n".join(offenders)


def test_project_imports_are_at_module_level_outside_the_command_line():
    """Imports of monai_ext inside functions hide dependencies (and cycles); only the command line defers them,
    so that ``--help`` answers without importing torch."""
    offenders = []
    for path in _modules():
        if path.parent.name == "cli" or path == PACKAGE / "__init__.py":  # the package's import_components() too
            continue
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(fn):
                    if isinstance(node, (ast.Import, ast.ImportFrom)) and _is_project_import(node):
                        offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not offenders, "\n".join(offenders)


def test_every_module_declares_all_and_documents_its_public_definitions():
    missing_all, missing_doc = [], []
    for path in _modules():
        if path.name == "__main__.py":
            continue
        tree = ast.parse(path.read_text())
        if ast.get_docstring(tree) is None and path.name != "__init__.py":
            missing_doc.append(f"{path.relative_to(REPO)} (module)")
        names = [t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)]
        names += [n.target.id for n in tree.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)]
        if "__all__" not in names:
            missing_all.append(str(path.relative_to(REPO)))
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                if ast.get_docstring(node) is None:
                    missing_doc.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}")
    assert not missing_all, f"modules without __all__: {missing_all}"
    assert not missing_doc, "public definitions without a docstring:\n" + "\n".join(missing_doc)


def test_every_method_has_an_app_package_and_a_bundle():
    apps = {p.name for p in (PACKAGE / "apps").iterdir() if (p / "__init__.py").is_file()}
    bundles = {p.name for p in (REPO / "bundles").iterdir() if (p / "configs").is_dir()}
    assert apps == bundles, f"apps without a bundle: {sorted(apps - bundles)}; bundles without an app: {sorted(bundles - apps)}"


def test_architecture_doc_names_every_package():
    doc = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    for name in SUBPACKAGES:
        short = name.split(".", 1)[1]
        assert short in doc, f"docs/ARCHITECTURE.md does not mention {short}"
