"""Does every service have the template's shape? (STYLE.md, "The shape of a service")

    python -m tooling.shape [SERVICES_DIR]     exit 1 with one line per difference

Each `services/<svc>/` holds exactly the top-level role modules below and the `domain/`
package; every other package in it is a business concept (`ledger/`, `catalogue/`, ...)
whose files are drawn only from the concept role files. `domain/` is free inside: pure
rules and value objects, whatever modules they need (`make lint` keeps it pure).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

TOP_LEVEL_MODULES: dict[str, str] = {
    "__init__.py": "the package",
    "__main__.py": "`python -m services.<svc>`",
    "app.py": "the composition root: settings, engine, routers, handler registry, workers",
    "settings.py": "the pydantic-settings class",
    "db.py": "the table definitions",
    "uow.py": "the unit of work and its repositories",
    "handlers.py": "the consumer's registry: event type -> concept handler",
    "jobs.py": "every periodic job, each a shared.jobs.PeriodicJob",
    "metrics.py": "the service's own Prometheus gauges",
    "scopes.py": "the service's API-key scopes",
    "invariants.py": "invariant_violations(conn), the service's invariant checks",
}
DOMAIN = "domain"
CONCEPT_FILES: dict[str, str] = {
    "__init__.py": "the package",
    "endpoints.py": "HTTP routes",
    "handlers.py": "consumer handlers",
    "service.py": "the use cases",
    "repository.py": "loads and saves through the unit of work",
    "schemas.py": "request and response models",
    "events.py": "typed builders of the outgoing events",
}
DEFAULT_SERVICES_DIR = Path(__file__).resolve().parent.parent / "services"


def _entries(directory: Path) -> list[Path]:
    """What a directory holds, without caches and hidden files, in name order."""
    return sorted(
        p for p in directory.iterdir() if p.name != "__pycache__" and not p.name.startswith(".")
    )


def _is_package(path: Path) -> bool:
    return path.is_dir() and (path / "__init__.py").is_file()


def service_dirs(services_dir: Path) -> list[Path]:
    """Every service package under `services_dir`."""
    return [p for p in _entries(services_dir) if _is_package(p)]


def _outside_services(services_dir: Path, base: Path) -> Iterator[str]:
    for entry in _entries(services_dir):
        if entry.name != "__init__.py" and not _is_package(entry):
            yield f"{entry.relative_to(base)}: services/ holds only service packages"


def _concept_problems(concept: Path, base: Path) -> Iterator[str]:
    if not (concept / "__init__.py").is_file():
        yield f"{concept.relative_to(base)}/: a concept package needs an __init__.py"
    allowed = ", ".join(name for name in CONCEPT_FILES if name != "__init__.py")
    for entry in _entries(concept):
        shown = entry.relative_to(base)
        if entry.is_dir():
            yield f"{shown}/: a concept package holds no sub-packages (one concept each)"
        elif entry.name not in CONCEPT_FILES:
            yield f"{shown}: not a concept role file (a concept holds only {allowed})"


def _service_problems(service: Path, base: Path) -> Iterator[str]:
    present = {entry.name: entry for entry in _entries(service)}
    for name, role in TOP_LEVEL_MODULES.items():
        if not (name in present and present[name].is_file()):
            yield f"{service.relative_to(base)}/: missing {name} ({role})"
    domain = present.get(DOMAIN)
    if domain is None or not _is_package(domain):
        yield f"{service.relative_to(base)}/: missing the {DOMAIN}/ package (pure rules)"
    for name, entry in present.items():
        if entry.is_dir():
            if name != DOMAIN and name not in TOP_LEVEL_MODULES:
                yield from _concept_problems(entry, base)
        elif name not in TOP_LEVEL_MODULES:
            yield (
                f"{entry.relative_to(base)}: not a top-level role module; move it into a "
                "concept package (or domain/)"
            )


def shape_problems(services_dir: Path) -> list[str]:
    """Every way `services_dir` differs from the template (empty when every service fits)."""
    if not services_dir.is_dir():
        return [f"{services_dir}: no such directory"]
    base = services_dir.parent  # so lines read services/<svc>/...
    problems = list(_outside_services(services_dir, base))
    services = service_dirs(services_dir)
    if not services:
        problems.append(f"{services_dir}: no service package found")
    for service in services:
        problems.extend(_service_problems(service, base))
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) > 1 or any(arg.startswith("-") for arg in args):
        print(__doc__, file=sys.stderr)
        return 2
    services_dir = Path(args[0]) if args else DEFAULT_SERVICES_DIR
    problems = shape_problems(services_dir)
    if problems:
        print(f"{len(problems)} difference(s) from the service template:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    names = ", ".join(service.name for service in service_dirs(services_dir))
    print(f"every service has the template's shape: {names}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
