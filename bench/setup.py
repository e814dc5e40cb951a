"""Install what the benchmarks need, only when it is missing: matplotlib and
python-lambda-local into this virtualenv, lambda-local (npm) into .compat/node."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

MATPLOTLIB = "matplotlib==3.10.9"
LAMBDA_LOCAL_PY = "python-lambda-local==0.1.13"
LAMBDA_LOCAL_NPM = "lambda-local@2.2.0"


def ensure(repo: Path) -> list[str]:
    """Return what was installed (empty when everything was there)."""
    done = []
    wanted = [spec for module, spec in (("matplotlib", MATPLOTLIB),
                                        ("lambda_local", LAMBDA_LOCAL_PY))
              if importlib.util.find_spec(module) is None]
    if wanted:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *wanted],
                       check=True, timeout=600)
        done += wanted
    node_dir = repo / ".compat" / "node"
    if not (node_dir / "node_modules" / "lambda-local" / "package.json").is_file():
        node_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(node_dir),
                        LAMBDA_LOCAL_NPM], check=True, timeout=600)
        done.append(LAMBDA_LOCAL_NPM)
    return done
