"""The package's rooms keep to their rules (mnist_paddle/__init__.py says what may import what)."""

import ast
import json
from pathlib import Path

import pytest
from conftest import ROOT, run_tool

PACKAGE = ROOT / "mnist_paddle"
SHARED = {"mnist_paddle", "mnist_paddle.cli", "mnist_paddle.errors", "mnist_paddle.fileio"}
SHARED |= {"mnist_paddle.digits", "mnist_paddle.cpu"}

# subpackage -> the package modules it may import (a name, or a prefix ending in '.')
MAY_IMPORT = {
    "shared": SHARED,
    "models": SHARED | {"mnist_paddle.models", "mnist_paddle.models."},
    "serving": SHARED | {"mnist_paddle.serving", "mnist_paddle.serving."},
    "train": SHARED
    | {"mnist_paddle.models", "mnist_paddle.models.", "mnist_paddle.train", "mnist_paddle.train."}
    | {"mnist_paddle.serving", "mnist_paddle.serving."},
    "bench": {"mnist_paddle", "mnist_paddle."},
}


def allowed(room: str, module: str) -> bool:
    return any(
        module == rule or (rule.endswith(".") and module.startswith(rule))
        for rule in MAY_IMPORT[room]
    )


def room_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else "shared"


def imports(path: Path) -> set[str]:
    """The mnist_paddle modules `path` imports, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {
                f"{node.module}.{a.name}" for a in node.names if node.module == "mnist_paddle"
            }
    return {m for m in found if m.split(".")[0] == "mnist_paddle"}


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT))
)
def test_each_module_imports_what_its_room_may(path):
    room = room_of(path)
    wrong = sorted(m for m in imports(path) if not allowed(room, m))
    assert not wrong, f"{room} module imports {wrong}"


def test_ls_shows_the_rooms_and_no_module_is_long():
    rooms = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert rooms == {"train", "serving", "bench", "models"}
    for path in PACKAGE.rglob("*.py"):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        assert lines <= 300, f"{path.relative_to(ROOT)} has {lines} lines"


LOADED = "print(json.dumps(sorted(m for m in sys.modules if m.startswith('mnist_paddle'))))\n"


def loaded_by_infer(model_dir: Path, image: Path) -> list[str]:
    """The mnist_paddle modules a run of deploy/infer.py loads, in a fresh interpreter."""
    script = (
        "import json, runpy, sys\n"
        f"sys.argv = ['infer.py', '--model-dir', {str(model_dir)!r}, {str(image)!r}]\n"
        "try:\n"
        "    runpy.run_path('deploy/infer.py', run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        f"{LOADED}"
    )
    result = run_tool("-c", script)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def loaded_by_service(model_dir: Path) -> list[str]:
    """The mnist_paddle modules deploy/serve.py's app loads, started and asked once."""
    script = (
        "import json, sys\n"
        "from fastapi.testclient import TestClient\n"
        "from mnist_paddle.serving.service import create_app\n"
        f"with TestClient(create_app({str(model_dir)!r})) as client:\n"
        "    assert client.get('/health').status_code == 200\n"
        f"{LOADED}"
    )
    result = run_tool("-c", script)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_deployment_loads_nothing_of_training_or_measuring(exported):
    sample = next((ROOT / "deploy" / "samples").glob("*.png"))
    for loaded in (loaded_by_infer(exported, sample), loaded_by_service(exported)):
        assert "mnist_paddle.serving.inference" in loaded  # it did run the model
        wrong = [m for m in loaded if not allowed("serving", m)]
        assert not wrong, f"the deployment loaded {wrong}"
