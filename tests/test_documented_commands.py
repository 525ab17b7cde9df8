"""Every command the documentation shows works on a fresh clone. Each line of every ```bash block in README.md and
docs/*.md is run the way it can be run here: a `snakemake` command as a dry-run, whose job count must be the one
the line states (`# plans N jobs`); a `gsm-pipeline` command checked against its own --help (every flag exists)
and its paths (each exists in the checkout, is a file the user supplies, written `path/to/...`, or is a file the
DAG makes under the same config); `gsm-pipeline validate` for real; pytest as a collection, a benchmark script
as its --help. Installing (pip, venv) is what .ci/run does on every clean clone."""
from __future__ import annotations

import functools
import re
import shlex
import subprocess

import pytest

from conftest import REPO

pytestmark = pytest.mark.dag  # starts Snakemake or a command in a subprocess

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SETUP = ("pip", "python3 -m pip", "python3 -m venv", "python -m venv", "source", "cd", "git", "export", ".ci/", "open",
         "ls")


def placeholder(token: str) -> bool:
    """`PATH`, `TEST.jsonl`, `<chain>`, `path/to/...`: a value the reader fills in."""
    return "<" in token or token.startswith("path/to/") or bool(re.fullmatch(r"[A-Z][A-Z0-9_]*(\.[a-z]+)?/?", token))
PLANS = re.compile(r"^\s*plans (\d+) jobs?")


TOOLS = ("snakemake ", "gsm-pipeline ", "pytest", "python ", "python3 ", "bash ", "pip ")


def code_lines(text: str) -> list[str]:
    """Command lines of a page: its ```bash blocks, its indented code blocks, and inline `snakemake ...` or
    `gsm-pipeline ...` spans (a table's commands), backslash continuations joined."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        lines += re.sub(r"\\\n\s*", " ", block).splitlines()
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    indented = re.sub(r"\\\n\s*", " ", "\n".join(line[4:] for line in prose.splitlines() if line.startswith("    ")))
    lines += [line for line in indented.splitlines() if line.startswith(TOOLS)]
    lines += re.findall(r"`((?:snakemake|gsm-pipeline) [^`]+)`", prose)
    return [" ".join(line.replace("[", " ").replace("]", " ").split()) for line in lines]


def documented_commands() -> list[tuple[str, str, int | None]]:
    """(where, command, the job count its line states) for every command line of every page."""
    found = []
    for doc in DOCS:
        for line in code_lines(doc.read_text()):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            command, _, comment = line.partition(" #")
            plans = PLANS.search(comment)
            for part in command.split("&&"):
                found.append((doc.relative_to(REPO).as_posix(), part.strip(), int(plans[1]) if plans else None))
    return found


COMMANDS = documented_commands()


def run(args: list[str]) -> subprocess.CompletedProcess:
    """The command in the checkout; a command shown on several pages (a `--help`, a dry-run) runs once."""
    return _run(tuple(args))


@functools.lru_cache(maxsize=None)
def _run(args: tuple[str, ...]) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)


def dry_run(args: list[str]) -> subprocess.CompletedProcess:
    """A snakemake command as a dry-run printing its job table: its core count, which plans nothing, dropped, so
    that `snakemake --cores all` and `snakemake -n` are one run."""
    plan, skip = [], False
    for arg in args:
        if skip or arg in ("-n", "--dry-run"):
            skip = False
            continue
        skip = arg in ("--cores", "-c", "--quiet")
        if not skip:
            plan.append(arg)
    return run([*plan, "-n", "--quiet", "rules"])


def job_count(stdout: str) -> int:
    """The total of Snakemake's "Job stats" table."""
    totals = [line.split() for line in stdout.splitlines() if line.split()[:1] == ["total"]]
    assert totals, stdout[-2000:]
    return int(totals[-1][1])


def configfiles(args: list[str]) -> list[str]:
    out, taking = [], False
    for arg in args:
        if arg.startswith("-"):
            taking = arg == "--configfile"
        elif taking:
            out.append(arg)
    return out


def makeable(paths: list[str], config: list[str]) -> None:
    """Each path exists in the checkout or is something the DAG can make (Snakemake plans it)."""
    missing = [p for p in paths if not (REPO / p).exists()]
    if missing:
        done = run(["snakemake", *missing, "-n", *(["--configfile", *config] if config else []), "--quiet", "rules"])
        assert done.returncode == 0, f"no such file, and the DAG does not make it: {missing}\n{done.stderr[-1500:]}"


def chain_run(path: str) -> str:
    """`results/rl-<chain>/model` as the default config names that stage's folder (its first row's)."""
    from gsm_pipeline.config import validate_config
    from gsm_pipeline.config_files import load_config_file
    from gsm_pipeline.layout import runs

    stage = re.search(r"([a-z_]+)-<chain>", path)[1]
    run = next(r for (_, st), r in runs(validate_config(load_config_file(REPO / "config.yaml"))).items() if st == stage)
    return path.replace(f"{stage}-<chain>", run)


def check_gsm_pipeline(args: list[str]) -> None:
    if len(args) == 1 or args[1].startswith("-"):  # gsm-pipeline --help, --version
        assert run(args).returncode == 0
        return
    command = args[1]
    if command == "validate" and not any(placeholder(a) for a in args):
        done = run(args)
        assert done.returncode == 0, done.stderr[-1500:]
        return
    helped = run(["gsm-pipeline", command, "--help"])
    assert helped.returncode == 0, helped.stderr[-1500:]
    flags = [a.split("=")[0] for a in args[2:] if a.startswith("-")]
    assert [f for f in flags if f not in helped.stdout] == [], f"{command} has no such flag"
    outputs = {"--out", "-o", "--output", "--schema"}
    paths = [a for i, a in enumerate(args[2:], 2) if ("/" in a or a.endswith((".jsonl", ".yaml", ".json")))
             and not a.startswith("-") and not placeholder(a) and args[i - 1] not in outputs]
    makeable(paths, [])


@pytest.mark.parametrize("where, command, plans", COMMANDS, ids=[f"{w}: {c[:60]}" for w, c, _ in COMMANDS])
def test_a_documented_command_works_as_shown(where, command, plans):
    args = shlex.split(command)
    if command.startswith(SETUP) or not args:
        return
    tool = args[0]
    if tool == "snakemake":
        args = [chain_run(a) if "-<chain>" in a else a for a in args]
        if any(placeholder(a) for a in args):  # a synopsis (`--configfile workflow/presets/<name>.yml`)
            return
        if "--report" in args:  # the report of a finished run: the tiny DAG's test makes one
            return
        done = dry_run(args)
        assert done.returncode == 0, f"{command}\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}"
        if plans is not None:
            assert job_count(done.stdout) == plans, f"{where} says {command} plans {plans} jobs"
    elif tool == "gsm-pipeline":
        check_gsm_pipeline(args)
    elif tool == "pytest" or args[:3] == ["python3", "-m", "pytest"]:
        done = run([*args, "--collect-only", "-q"])
        assert done.returncode == 0, done.stdout[-1500:]
    elif tool in ("python", "python3") and args[1].startswith(("tests/bench/", "tests/gpu/")):
        assert run([tool, args[1], "--help"]).returncode == 0
    elif tool == "bash" and args[1] == "tests/gpu/prove.sh":
        assert (REPO / args[1]).is_file()  # a GPU's to run; its CPU mode is in the slow suite
    else:
        pytest.fail(f"{where}: no way to check {command!r}; teach this test how, or show it differently")


def test_the_documentation_shows_commands_and_states_job_counts_only_where_a_dry_run_checks_them():
    """A job count in prose is a number nobody re-counts: counts are stated on the command that plans them."""
    assert len(COMMANDS) >= 10
    assert any(plans is not None for _, _, plans in COMMANDS)
    counted = re.compile(r"\b\d[\d,]* (?:jobs|trainings|evaluations)\b")
    unchecked = [f"{doc.name}: {m.group(0)}" for doc in DOCS
                 for m in counted.finditer(re.sub(r"```.*?```", "", doc.read_text(), flags=re.S))]
    assert unchecked == []
