"""Check the carried wheels' versions against the GPU machine's packages, so that a GPU call is not spent on an
import error: every requirement of every carried wheel (its Requires-Dist for CPython 3.12 on Linux x86_64, and its
Requires-Python) must be met by another carried wheel or by what the machine has.

    python benchmarks/gpu/check_carry.py WHEELS --image benchmarks/gpu/gpu-image.txt  # here, offline (prepare.sh)
    python3 benchmarks/gpu/check_carry.py WHEELS --installed  # there, after the install (run.sh)

Here the machine's packages are its list (gpu-image.txt): a requirement on one of them whose version is not known
here is left to the machine, where run.sh checks it before the run starts. There the check reads what python3
imports (the carry first on PYTHONPATH): each carried wheel must be the version imported and its requirements met,
and so must the requirements on a carried package of the machine's packages that the run imports (USED; others are
listed). Exit 0 when all is met, else 1 with one line each.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from email.parser import Parser
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

MACHINE = {
    "python_version": "3.12",
    "python_full_version": "3.12.3",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
}
"""The GPU machine's environment markers (python3 there is CPython 3.12.3 on Linux x86_64)."""


USED = {"numpy", "scipy", "scikit-image", "pillow", "pandas", "pyyaml", "matplotlib", "seaborn", "pytest"}
USED |= {"pytest-xdist", "execnet", "tqdm", "torch", "jinja2", "requests"}
"""The machine's packages that the run imports (dip, its tests, the workflow, the tables)."""


def carried(wheels: Path) -> dict[str, tuple[str, list[str], str]]:
    """Each carried wheel's name -> (version, Requires-Dist lines, Requires-Python)."""
    found = {}
    for wheel in sorted(wheels.glob("*.whl")):
        with zipfile.ZipFile(wheel) as archive:
            name = next(item for item in archive.namelist() if item.endswith(".dist-info/METADATA"))
            meta = Parser().parsestr(archive.read(name).decode("utf-8"))
        found[canonicalize_name(meta["Name"])] = (
            meta["Version"],
            meta.get_all("Requires-Dist") or [],
            meta.get("Requires-Python") or "",
        )
    return found


def image(path: Path) -> dict[str, str | None]:
    """The machine's packages from its list: name -> version, None where not known."""
    packages: dict[str, str | None] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            packages[canonicalize_name(name)] = version or None
    return packages


def applies(requirement: Requirement, environment: dict | None) -> bool:
    """Whether `requirement` is needed here: its marker holds on the machine, for no extra."""
    return requirement.marker is None or requirement.marker.evaluate({**(environment or {}), "extra": ""})


def check_offline(wheels: dict, machine: dict[str, str | None]) -> tuple[list[str], list[str]]:
    """(problems, requirements left to the machine) of the carry against the machine's list."""
    problems, unknown = [], []
    python = machine.get("python")
    for name, (version, requires, requires_python) in wheels.items():
        if python and requires_python and Version(python) not in SpecifierSet(requires_python):
            problems.append(f"{name} {version} needs Python {requires_python}; the machine has {python}")
        for line in requires:
            requirement = Requirement(line)
            if not applies(requirement, MACHINE):
                continue
            needed = canonicalize_name(requirement.name)
            if needed in wheels:
                have = wheels[needed][0]
            elif needed in machine:
                have = machine[needed]
            else:
                problems.append(f"{name} {version} needs {requirement}: neither carried nor on the machine")
                continue
            if have is None:
                if str(requirement.specifier):
                    unknown.append(f"{name} needs {requirement} (on the machine, version not known here)")
            elif not requirement.specifier.contains(have, prereleases=True):
                where = "carried" if needed in wheels else "the machine has"
                problems.append(f"{name} {version} needs {requirement}; {where} {have}")
    return problems, unknown


def check_installed(wheels: dict) -> tuple[list[str], list[str]]:
    """(problems, notes) of the carry as this interpreter imports it (the machine's packages and the carry
    together); a package of the machine that the run does not import gives a note, not a problem."""
    problems, notes = [], []
    installed: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions():  # in sys.path order: the first one found is the one imported
        installed.setdefault(canonicalize_name(dist.metadata["Name"]), dist)
    for name, (version, _, _) in wheels.items():
        have = installed.get(name)
        if have is None or have.version != version:
            problems.append(f"{name}: carried {version}, imported {have.version if have else 'nothing'}")
    for name, dist in installed.items():
        for line in dist.requires or []:
            requirement = Requirement(line)
            needed = canonicalize_name(requirement.name)
            if not applies(requirement, None) or (name not in wheels and needed not in wheels):
                continue  # only what the carry brings or shadows
            other = installed.get(needed)
            if other is None or not requirement.specifier.contains(other.version, prereleases=True):
                line = f"{name} {dist.version} needs {requirement}; imported {other.version if other else 'nothing'}"
                (problems if name in wheels or name in USED else notes).append(line)
    return problems, notes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("wheels", type=Path, help="the carried wheels' folder")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--image", type=Path, help="the machine's package list (here, offline)")
    where.add_argument("--installed", action="store_true", help="what this python imports (there)")
    args = parser.parse_args()
    wheels = carried(args.wheels)
    if args.installed:
        problems, unknown = check_installed(wheels)
    else:
        problems, unknown = check_offline(wheels, image(args.image))
    for line in unknown:
        print(f"{'not imported by the run' if args.installed else 'left to the machine'}: {line}")
    for line in problems:
        print(f"carry: {line}", file=sys.stderr)
    print(f"{len(wheels)} carried wheels: {'all requirements met' if not problems else f'{len(problems)} unmet'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
