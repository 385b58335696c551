"""One engine interface: every engine package has, for every step with heavy work, a module named after the step
with the functions of that step's Protocol (same parameters), and the step modules never branch on the engine."""

import importlib
import inspect

import pytest

from pipeline.engines import ENGINES, WORK, engine_for, engine_module
from tests.helpers import REPO_ROOT, small_config_with


def _protocol_functions(protocol: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(protocol).items()
        if callable(member) and not name.startswith("_")
    }


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("step", sorted(WORK))
def test_each_engine_does_each_steps_work_with_the_protocols_signature(engine, step):
    module = importlib.import_module(engine_module(engine, step))
    for name, signature in _protocol_functions(WORK[step]).items():
        function = getattr(module, name, None)
        assert callable(function), f"{module.__name__} lacks {name}"
        expected = [p for p in signature.parameters if p != "self"]
        assert list(inspect.signature(function).parameters) == expected, f"{module.__name__}.{name}"
    assert callable(importlib.import_module(f"pipeline.engines.{engine}").session)


def test_the_configured_engine_is_the_one_loaded():
    config = small_config_with({"engine": "dask"})
    assert engine_for(config, "train").__name__ == "pipeline.engines.dask.train"
    assert engine_for(small_config_with({}), "train").__name__ == "pipeline.engines.local.train"


def test_no_step_module_chooses_an_engine():
    # init_config.py runs the local engine's preprocess on purpose: in this process, on the table, with no run.
    for path in sorted(
        set((REPO_ROOT / "pipeline" / "steps").glob("*.py")) - {REPO_ROOT / "pipeline/steps/init_config.py"}
    ):
        text = path.read_text()
        assert not [
            word for word in ("config.engine", "engines.dask", "engines.local", "dask_client") if word in text
        ], path.name


def test_main_with_every_step_reused_imports_no_model_library():
    """A reused step is read back from its run: `main` imports a step's module (XGBoost, Optuna, scikit-learn) only
    when the step computes (a fully reused `main` starts in about the time of `import mlflow`)."""
    import subprocess
    import sys

    probe = (
        "import sys; from pipeline import cli, engines; cli.build_parser(); import pipeline.steps.chain; "
        "from pipeline.tracking.reuse import reused_result; from tests.helpers import small_config_with; "
        "engines.session(small_config_with({})).__enter__(); "
        "print(*[m for m in ('xgboost', 'optuna', 'sklearn', 'distributed') if m in sys.modules])"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    assert loaded.stdout.split() == []
