"""Project hygiene: pins agree, notebooks are committed clean, nothing reaches a hub."""

import json
import re
import subprocess
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _pins(requirements: list[str]) -> dict[str, str]:
    pins = {}
    for req in requirements:
        # Extras are part of the pin: `ray[data]==2.60.0` must match itself in both files.
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+(?:\[[\w,\-]+\])?)==([^\s;]+)", req.strip())
        assert m, f"not an exact pin: {req!r}"
        pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins


def test_environment_yml_matches_pyproject_pins() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    py_pins = _pins(reqs)
    assert all("==" in r for r in reqs), "every dependency in pyproject.toml is pinned exactly"
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    env_pins = _pins([p for p in pip_section if "==" in p])
    assert "python=3.11" in env["dependencies"]
    assert py_pins["torch"] == "2.13.0"
    assert env_pins == py_pins, {k: (py_pins.get(k), env_pins.get(k)) for k in set(py_pins) | set(env_pins)
                                 if py_pins.get(k) != env_pins.get(k)}


def test_notebooks_are_numbered_stripped_and_parameterised() -> None:
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    names = [p.stem for p in notebooks]
    for prefix in ("01_data", "02_teacher", "03_student", "04_distillation", "05_deployment", "06_batch_scoring"):
        assert prefix in names, f"missing notebooks/{prefix}.ipynb"
    for path in notebooks:
        nb = json.loads(path.read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{path.name}: exactly one cell tagged 'parameters'"
        assert "profile" in "".join(tagged[0]["source"])
        assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), (
            f"{path.name} is committed with outputs; run nbstripout"
        )
        assert nb["metadata"]["kernelspec"]["name"] == "kdutils"


def test_no_hub_calls_in_code() -> None:
    pattern = re.compile(
        r"nltk\.download|load_dataset\(['\"][a-z_]+/|from_pretrained\(['\"](bert|distilbert|roberta|google|sentence-transformers)"
    )
    files = kdutils_modules() + list((ROOT / "notebooks").glob("*.ipynb"))
    hits = [f"{p}: {m.group(0)}" for p in files for m in pattern.finditer(p.read_text())]
    assert not hits


def test_ci_calls_the_readme_test_command() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert "make test" in (ROOT / "README.md").read_text()
    assert "make study" in (ROOT / "README.md").read_text()


def kdutils_modules() -> list[Path]:
    """Every module of kdutils, in every sub-package (the rules below must see them all)."""
    paths = sorted(p for p in (ROOT / "kdutils").rglob("*.py") if "__pycache__" not in p.parts)
    assert len(paths) > 40, f"only {len(paths)} kdutils modules found: a rule would check almost nothing"
    assert {p.parent.name for p in paths} >= {"study", "data", "teacher", "student", "inference", "serving",
                                              "report"}
    return paths


# A module says one job; past this many lines it holds several (issue 21). The summary's schema is a
# declaration file, one pydantic model per section, and is exempt.
MAX_MODULE_LINES = 600
LONG_BY_DESIGN = {"study/summary.py"}


def test_no_module_is_over_600_lines() -> None:
    long = {p.relative_to(ROOT / "kdutils").as_posix(): n for p in kdutils_modules()
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert set(long) <= LONG_BY_DESIGN, {k: v for k, v in long.items() if k not in LONG_BY_DESIGN}


def test_kdutils_modules_do_not_know_about_notebooks_or_profiles() -> None:
    # Library rooms take arguments; only config and pipeline load profiles or run notebooks
    # (an error message may still tell the user which step to run first).
    allowed = {"study/config.py", "pipeline.py"}
    offenders = []
    for path in kdutils_modules():
        rel = path.relative_to(ROOT / "kdutils").as_posix()
        if rel in allowed or path.name == "__init__.py":
            continue
        text = path.read_text()
        if re.search(r"load_profile\(|^\s*(import|from) (papermill|nbformat|nbconvert)", text, re.M):
            offenders.append(rel)
    assert not offenders, offenders


def test_ruff_clean() -> None:
    ruff = ROOT / ".venv" / "bin" / "ruff"
    cmd = [str(ruff) if ruff.exists() else "ruff", "check", "kdutils", "tests", "notebooks"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:]


def test_readme_activates_the_environment_before_its_first_direct_command() -> None:
    # issue 13.3: `python -m kdutils.pipeline` and `papermill` need .venv; make targets do not.
    readme = (ROOT / "README.md").read_text()
    activate = readme.find("source .venv/bin/activate")
    # Commands with arguments; the sentence naming them ("python -m kdutils.pipeline …") is not one.
    direct = [m.start() for m in re.finditer(r"python -m kdutils[.\w]* [-\w]|papermill notebooks|torchrun --", readme)]
    assert activate != -1 and direct and activate < min(direct), "activation must come before the first command"


def test_make_lab_works_for_root_and_other_users() -> None:
    # issue 13.4: Jupyter refuses root without --allow-root; set-up runs as root for apt.
    out = subprocess.run(["make", "-n", "lab", "STAMP=Makefile"], cwd=ROOT, capture_output=True, text=True)
    recipe = [ln for ln in out.stdout.splitlines() if "jupyter lab" in ln]
    assert recipe, out.stdout + out.stderr
    flag = re.search(r"\$\((.*)\)", recipe[0]).group(1)
    for uid, expected in (("0", "--allow-root"), ("1000", "")):
        shell = subprocess.run(["sh", "-c", f"id() {{ echo {uid}; }}; echo $({flag})"], capture_output=True, text=True)
        assert shell.stdout.strip() == expected, (uid, shell)
