"""The import boundaries of DESIGN.md §2, checked by import-linter (contracts in pyproject.toml)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    code = (
        "import sys; from importlinter.cli import lint_imports_command; "
        "sys.argv = ['lint-imports', '--no-cache']; lint_imports_command()"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0 and "0 broken" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]


def _loaded_after(modules: list[str], watch: tuple[str, ...]) -> list[str]:
    """Import `modules` in a fresh interpreter; which of `watch` came with them."""
    code = (
        f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
        f"print(','.join(w for w in {watch!r} if w in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    return [w for w in r.stdout.strip().split(",") if w]


def _modules(package: str) -> list[str]:
    base = ROOT / package.replace(".", "/")
    return sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in base.rglob("*.py")
        if p.name != "__main__.py"
    )


def test_no_app_module_loads_training_code():
    """What import-linter cannot see: a module imported at run time by a dependency. Every module of the
    app and the CLI, imported together, leaves torch and its kin unloaded (the app starts in a second)."""
    assert _loaded_after(_modules("pgg_tui"), ("torch", "transformers", "datasets")) == []


def test_the_cli_and_the_core_load_no_textual():
    assert _loaded_after(["pgg_tui.cli", *_modules("pgg_tui.core")], ("textual", "torch")) == []
