"""Everything an offline GPU node lacks to run the pipeline and its proof, in one folder to carry there.

    python tests/gpu/wheelhouse.py --gsm8k /data/gsm8k --tokenizer resources/model --out .gpu_carry

Wheels: pip resolves the project's dependencies (and the test extra) for CPython 3.12 manylinux x86-64 as if
the node's packages (tests/gpu/node-packages.txt, the node's `pip list --format=freeze`) were installed, and
downloads only what that node lacks; DeepSpeed (an sdist on PyPI) and this project are built here as pure-Python
wheels (DeepSpeed with no compiled ops: they JIT-build on the node when used). The node's packages are modelled as
dependency-free stub wheels at their exact versions (`+node` local label, so PyPI never satisfies them), so the
resolution is the one pip would make on the node. Names listed without a version are skipped by name; the proof
runs `pip check` on the node after installing, which names any clash.

Data: the tokenizer folder (not the weights) and GSM8K's train and test JSONL, which the benchmarks read.
Prints each wheel's size and the total, and exits 1 when the folder exceeds the carry budget (64 MiB together
with the working tree).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NODE = ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp", "--abi", "cp312",
        *[a for p in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
                      "manylinux1_x86_64", "any") for a in ("--platform", p)]]
EXTRA = ["pytest", "hypothesis"]  # the test extra: the proof's checks import the suite's fixtures
BUDGET_MIB = 64
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json",
                   "config.json", "generation_config.json")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def node_packages(path: Path) -> dict[str, str | None]:
    """name -> version (None where the listing names the package without one)."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            out[normalise(name)] = version or None
    return out


def stub_wheel(folder: Path, name: str, version: str) -> None:
    """A wheel with metadata only: to pip's resolver, the node's installed package."""
    dist = f"{name.replace('-', '_')}-{version}+node"
    with zipfile.ZipFile(folder / f"{dist}-py3-none-any.whl", "w") as whl:
        whl.writestr(f"{dist}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}+node\n")
        whl.writestr(f"{dist}.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        whl.writestr(f"{dist}.dist-info/RECORD", "")


def pip(*args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True, env=env)


def dist_name(wheel: Path) -> str:
    return normalise(wheel.name.split("-")[0])


def project_requirements() -> list[str]:
    import tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"] + EXTRA


def build(wheels: Path, *requirements: str, isolated: bool = True) -> None:
    """Pure-Python wheels built here from sdists (DeepSpeed's setup imports the torch installed here)."""
    pip("wheel", "--quiet", "--no-deps", "-w", str(wheels), *([] if isolated else ["--no-build-isolation"]),
        *requirements, env={**os.environ, "DS_BUILD_OPS": "0"})


def resolve(node: dict[str, str | None], wheels: Path, work: Path, platform: list[str]) -> list[dict]:
    """What pip would install on a machine holding the node's packages: each install's name, version and url."""
    stubs = work / "stubs"
    stubs.mkdir(parents=True)
    for name, version in node.items():
        if version:
            stub_wheel(stubs, name, version)
    constraints = work / "constraints.txt"
    constraints.write_text("".join(f"{n}=={v}+node\n" for n, v in node.items() if v))
    report = work / "report.json"
    pip("install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report), "--target",
        str(work / "target"), *platform, "--find-links", str(stubs), "--find-links", str(wheels),
        "-c", str(constraints), *map(str, sorted(wheels.glob("gsm_pipeline-*.whl"))), *project_requirements())
    return [{"name": normalise(i["metadata"]["name"]), "version": i["metadata"]["version"],
             "url": i["download_info"]["url"]} for i in json.loads(report.read_text())["install"]]


def lacking(node: dict[str, str | None], built: Path, work: Path) -> tuple[list[dict], list[str]]:
    """The node's missing distributions, and the sdists it must compile itself. PyPI has some packages only as
    sdists (DeepSpeed, connection_pool, pycosat): a first resolution for this machine finds them and builds each
    here; a pure-Python build is carried as a wheel, a compiled one (built for this machine's Python, not the
    node's) as its sdist, which the node builds with its own compiler."""
    import importlib.metadata

    build(built, str(REPO), isolated=False)
    build(built, f"deepspeed=={importlib.metadata.version('deepspeed')}", isolated=False)
    sdists = [i for i in resolve(node, built, work / "here", []) if i["name"] not in node
              and not i["url"].endswith(".whl")]
    if sdists:
        build(built, *(f"{i['name']}=={i['version']}" for i in sdists))
    compiled = {dist_name(w): w.name.split("-")[1] for w in built.glob("*.whl") if not w.name.endswith("-none-any.whl")}
    for wheel in built.glob("*.whl"):
        if dist_name(wheel) in compiled:
            wheel.unlink()
    present = {**node, **compiled}
    needed = [i for i in resolve(present, built, work / "node", NODE) if i["name"] not in present]
    return needed, [f"{n}=={v}" for n, v in compiled.items()]


def copy_data(tokenizer: Path, gsm8k: Path | None, out: Path) -> None:
    (out / "tokenizer").mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (tokenizer / name).exists():
            shutil.copy(tokenizer / name, out / "tokenizer" / name)
    if gsm8k:
        (out / "gsm8k").mkdir(exist_ok=True)
        for split in ("train.jsonl", "test.jsonl"):
            shutil.copy(gsm8k / split, out / "gsm8k" / split)


def size_mib(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / ".gpu_carry", help="git-ignored folder to fill")
    parser.add_argument("--node", type=Path, default=Path(__file__).with_name("node-packages.txt"),
                        help="the node's `pip list --format=freeze`")
    parser.add_argument("--tokenizer", type=Path, default=REPO / "resources/model", help="a tokenizer folder")
    parser.add_argument("--gsm8k", type=Path, help="a folder with GSM8K's train.jsonl and test.jsonl")
    args = parser.parse_args()
    wheels = args.out / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    shutil.rmtree(args.out / "sdists", ignore_errors=True)
    wheels.mkdir(parents=True)
    node = node_packages(args.node)
    with tempfile.TemporaryDirectory() as tmp:
        built = Path(tmp) / "built"
        built.mkdir()
        needed, compiled = lacking(node, built, Path(tmp))
        local = {dist_name(w): w for w in built.glob("*.whl")}
        for item in needed:
            if item["name"] in local:
                shutil.copy(local[item["name"]], wheels)
    fetch = [f"{i['name']}=={i['version']}" for i in needed if i["name"] not in local]
    pip("download", "--quiet", "--no-deps", *NODE, "-d", str(wheels), *fetch)
    if compiled:
        pip("download", "--quiet", "--no-deps", "--no-binary=:all:", "-d", str(args.out / "sdists"), *compiled)
    copy_data(args.tokenizer, args.gsm8k, args.out)
    for wheel in sorted(wheels.iterdir()):
        print(f"{wheel.stat().st_size / 2**20:7.2f} MiB  {wheel.name}")
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    tree = sum((REPO / f).stat().st_size for f in tracked.splitlines() if (REPO / f).is_file()) / 2**20
    total = size_mib(args.out)
    print(f"{len(list(wheels.iterdir()))} wheels, {size_mib(wheels):.1f} MiB; data {total - size_mib(wheels):.1f} MiB; "
          f"with the working tree ({tree:.1f} MiB): {total + tree:.1f} of {BUDGET_MIB} MiB")
    return 0 if total + tree <= BUDGET_MIB else 1


if __name__ == "__main__":
    sys.exit(main())
