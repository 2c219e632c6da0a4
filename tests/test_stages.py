"""The stage scripts: one clear line for a bad param, and dvc.yaml deps that match what they import."""

import ast
import os
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT, committed_params

STAGES = ["listing", "ingest", "preprocess", "split", "train", "oof", "final", "threshold", "evaluate", "export",
          "card"]


def _stages(dvc_yaml: str) -> dict:
    return yaml.safe_load((ROOT / dvc_yaml).read_text())["stages"]


def _spec(stage: str) -> dict:
    """The stage as declared: listing in data/dvc.yaml, the others in dvc.yaml."""
    return _stages("data/dvc.yaml" if stage == "listing" else "dvc.yaml")[stage]


def _run_stage(name, cwd, *args):
    return subprocess.run([sys.executable, str(ROOT / "stages" / f"{name}.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("stage", ["ingest", "preprocess", "split"])
def test_bad_param_stops_the_stage_with_one_line_before_any_work(stage, tmp_path):
    text = committed_params().replace("epochs: 25", "epochs: -5")
    (tmp_path / "params.yaml").write_text(text)
    result = _run_stage(stage, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: params.yaml: epochs must be an integer >= 1, got -5"]
    assert os.listdir(tmp_path) == ["params.yaml"]  # nothing written


def test_train_stage_reports_a_misspelt_key_without_a_traceback(tmp_path):
    text = committed_params().replace("  optimizer: adam", "  optimiser: adam")
    (tmp_path / "params.yaml").write_text(text)
    result = _run_stage("train", tmp_path, "0")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: params.yaml: unknown key 'train.optimiser' (did you mean 'train.optimizer'?); "
        "keys allowed in train: batch_size, learning_rate, optimizer, seed, augment, stain_jitter, label_smoothing, "
        "schedule, class_weights, exclude_label_issues, early_stopping, reduce_lr, distribute, mixed_precision, "
        "init_from, finetune"
    ]


@pytest.mark.parametrize("args", [[], ["5"], ["x"]])
def test_train_stage_needs_a_fold_slot(tmp_path, args):
    (tmp_path / "params.yaml").write_text(committed_params())
    result = _run_stage("train", tmp_path, *args)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: usage: python stages/train.py FOLD (0 to 4)"


def test_dvc_yaml_has_a_train_stage_per_fold_slot():
    from malaria_cnn.core.params import FOLD_SLOTS

    assert _spec("train")["foreach"] == list(range(FOLD_SLOTS))


def test_the_stage_that_runs_every_time_has_a_lock_file_of_its_own():
    """DVC rewrites the lock file of a stage that ran: listing, which runs on every `dvc repro`, would make
    a no-op re-read and rewrite the whole pipeline's dvc.lock if it were declared in dvc.yaml."""
    assert [name for name, spec in _stages("dvc.yaml").items() if spec.get("always_changed")] == []
    assert list(_stages("data/dvc.yaml")) == ["listing"]
    assert _spec("listing")["always_changed"] and _spec("listing")["wdir"] == ".."


def test_the_listing_stage_writes_init_froms_sha256_or_says_in_one_line_that_it_is_missing(tmp_path):
    import hashlib

    params = yaml.safe_load(committed_params())
    params["train"]["init_from"] = "models/nih.keras"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = _run_stage("listing", tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: train.init_from: models/nih.keras not found: it should name "
                                                  "a trained model.keras, from the project's root or absolute"]
    (tmp_path / "models").mkdir()
    (tmp_path / "models/nih.keras").write_bytes(b"a model")
    result = _run_stage("listing", tmp_path)
    assert result.returncode == 0, result.stderr
    sha256 = hashlib.sha256(b"a model").hexdigest()
    assert (tmp_path / "data/init_from.tsv").read_text() == f"models/nih.keras\t{sha256}\n"
    assert result.stdout.strip().endswith(f"; train.init_from: models/nih.keras (sha256 {sha256[:12]}) -> "
                                          "data/init_from.tsv")


def test_an_idle_fold_slot_writes_its_placeholder_without_tensorflow(tmp_path):
    (tmp_path / "params.yaml").write_text(committed_params().replace("  folds: 5", "  folds: 2"))
    result = _run_stage("train", tmp_path, "3")
    assert result.returncode == 0 and result.stdout.strip() == "train@3: not used (cv.folds=2)"
    assert os.listdir(tmp_path / "models/folds/3") == ["UNUSED"] and "tensorflow" not in result.stderr.lower()


def test_multi_worker_without_tf_config_is_one_line_saying_what_to_set(tmp_path):
    text = committed_params().replace("  distribute: auto", "  distribute: multi_worker")
    (tmp_path / "params.yaml").write_text(text)
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    result = subprocess.run([sys.executable, str(ROOT / "stages" / "train.py"), "0"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: train.distribute is multi_worker but TF_CONFIG is not set: set TF_CONFIG to")


def test_missing_input_is_one_line(tmp_path):
    (tmp_path / "params.yaml").write_text(committed_params())
    result = _run_stage("preprocess", tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: data/raw/cell_images.zip not found: run the ingest stage first (dvc repro)"


def _imported_package_files(stage: str) -> set[str]:
    """The package's files a stage script imports: at its top, and inside its functions (imported late)."""
    script = ROOT / "stages" / f"{stage}.py"
    late = sorted({f"{node.module}.{alias.name}" for node in ast.walk(ast.parse(script.read_text()))
                   if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("malaria_cnn")
                   for alias in node.names})
    code = (
        "import importlib, runpy, sys\n"
        f"runpy.run_path({str(script)!r}, run_name='imported')\n"
        f"for name in {late!r}:\n"
        "    try: importlib.import_module(name)\n"
        "    except ModuleNotFoundError: pass  # a name, not a module, of its package\n"
        "for m in list(sys.modules.values()):\n"
        "    f = getattr(m, '__file__', None) or ''\n"
        "    if m.__name__.startswith('malaria_cnn') and f: print(f)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    return {os.path.relpath(line, ROOT) for line in out.split()}


def _holds_no_code(path: str) -> bool:
    """A package's __init__.py with only its docstring: what it says cannot change what a stage does."""
    body = ast.parse((ROOT / path).read_text()).body
    return all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) or
               isinstance(node, ast.Assign) and [t.id for t in node.targets] == ["__version__"] for node in body)


def _files_named_by(dep: str) -> set[str]:
    path = ROOT / dep
    if path.is_dir():
        return {os.path.relpath(f, ROOT) for f in path.rglob("*.py")}
    return {dep}


@pytest.mark.parametrize("stage", STAGES)
def test_dvc_yaml_deps_are_exactly_what_the_stage_imports(stage):
    """A module missing from deps would let a code change skip the stage; an extra one reruns it for nothing.
    A folder may stand for its modules only when the stage imports every one of them."""
    spec = _spec(stage)
    spec = spec.get("do", spec)  # a stage generated by foreach
    code_deps = [d for d in spec["deps"] if d.startswith(("src/", "stages/"))]
    named = [_files_named_by(d) for d in code_deps]
    covered = set().union(*named)
    imported = _imported_package_files(stage) | {f"stages/{stage}.py"}
    assert spec["cmd"] in (f"python stages/{stage}.py", f"python stages/{stage}.py ${{item}}")
    assert imported - covered == {f for f in imported - covered if _holds_no_code(f)}, "imported, not in deps"
    assert covered - imported == set(), "in deps, never imported"
    assert sum(map(len, named)) == len(covered), "a module named twice (as a file and within a folder)"
