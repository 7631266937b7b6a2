"""The experiment layer never imports the report layer above it: the command that ran an experiment builds its report."""
from __future__ import annotations

import subprocess
import sys


def _imported_after(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_importing_the_runner_imports_no_report_module():
    loaded = _imported_after("basefuse.experiments.runner")
    assert "basefuse.experiments.runner" in loaded
    assert not {m for m in loaded if m.startswith("basefuse.reports")}


def test_runner_source_names_no_report_module():
    # the import above is lazy-safe only if no function imports the report layer at call time either
    import inspect

    import basefuse.experiments.runner as runner

    assert "basefuse.reports" not in inspect.getsource(runner)
