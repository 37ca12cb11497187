"""`python -m tooling.shape` passes a services/ tree that follows the template and names every
way one that does not differs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tooling.shape import CONCEPT_FILES, TOP_LEVEL_MODULES, main, shape_problems


def _touch(path: Path, text: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _service(services: Path, name: str, concepts: dict[str, list[str]]) -> Path:
    root = services / name
    for module in TOP_LEVEL_MODULES:
        _touch(root / module)
    _touch(root / "domain" / "__init__.py")
    _touch(root / "domain" / "rules.py")  # domain/ holds whatever pure modules it needs
    for concept, files in concepts.items():
        for file in ["__init__.py", *files]:
            _touch(root / concept / file)
    return root


@pytest.fixture
def services(tmp_path: Path) -> Path:
    """Two services in the template's shape."""
    services = tmp_path / "services"
    _touch(services / "__init__.py")
    _service(services, "points", {"ledger": list(CONCEPT_FILES), "tiers": ["service.py"]})
    _service(services, "alerts", {"lapse": ["handlers.py", "service.py", "events.py"]})
    return services


def test_services_in_the_templates_shape_pass(services: Path) -> None:
    assert shape_problems(services) == []


def test_caches_and_hidden_files_are_not_modules(services: Path) -> None:
    _touch(services / "points" / "__pycache__" / "app.cpython-311.pyc")
    _touch(services / "points" / "ledger" / "__pycache__" / "service.cpython-311.pyc")
    _touch(services / "points" / ".DS_Store")
    assert shape_problems(services) == []


def test_a_missing_role_module_is_named_with_its_role(services: Path) -> None:
    (services / "alerts" / "uow.py").unlink()
    (services / "alerts" / "scopes.py").unlink()
    problems = shape_problems(services)
    assert len(problems) == 2, problems
    assert problems[0].startswith("services/alerts/: missing uow.py (the unit of work")
    assert problems[1].startswith("services/alerts/: missing scopes.py")


def test_a_role_module_made_a_package_is_still_missing(services: Path) -> None:
    (services / "points" / "jobs.py").unlink()
    _touch(services / "points" / "jobs" / "__init__.py")
    assert shape_problems(services) == [
        "services/points/: missing jobs.py (every periodic job, each a shared.jobs.PeriodicJob)"
    ]


def test_a_missing_domain_package_is_named(services: Path) -> None:
    for file in (services / "alerts" / "domain").iterdir():
        file.unlink()
    (services / "alerts" / "domain").rmdir()
    assert shape_problems(services) == [
        "services/alerts/: missing the domain/ package (pure rules)"
    ]


def test_every_other_top_level_module_is_named(services: Path) -> None:
    for name in ("api.py", "queries.py", "book.py"):
        _touch(services / "points" / name)
    problems = shape_problems(services)
    assert [p.split(":")[0] for p in problems] == [
        "services/points/api.py",
        "services/points/book.py",
        "services/points/queries.py",
    ], problems
    assert all("move it into a concept package" in p for p in problems)


def test_a_concept_package_holds_only_role_files(services: Path) -> None:
    _touch(services / "points" / "ledger" / "queries.py")
    _touch(services / "points" / "ledger" / "notes.txt")
    problems = shape_problems(services)
    assert [p.split(":")[0] for p in problems] == [
        "services/points/ledger/notes.txt",
        "services/points/ledger/queries.py",
    ], problems
    assert "a concept holds only endpoints.py, handlers.py, service.py" in problems[1]


def test_a_concept_package_needs_an_init_and_no_sub_packages(services: Path) -> None:
    (services / "alerts" / "lapse" / "__init__.py").unlink()
    _touch(services / "points" / "tiers" / "rules" / "__init__.py")
    assert shape_problems(services) == [
        "services/alerts/lapse/: a concept package needs an __init__.py",
        "services/points/tiers/rules/: a concept package holds no sub-packages (one concept each)",
    ]


def test_a_module_beside_the_services_is_named(services: Path) -> None:
    _touch(services / "docs.py")
    assert shape_problems(services) == ["services/docs.py: services/ holds only service packages"]


def test_a_tree_without_services_is_not_a_pass(tmp_path: Path) -> None:
    empty = tmp_path / "services"
    _touch(empty / "__init__.py")
    assert shape_problems(empty) == [f"{empty}: no service package found"]
    assert shape_problems(tmp_path / "nowhere") == [f"{tmp_path / 'nowhere'}: no such directory"]


def test_the_command_exits_1_with_the_list_and_0_when_every_service_fits(
    services: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(services)]) == 0
    assert "every service has the template's shape: alerts, points" in capsys.readouterr().out
    _touch(services / "points" / "saga.py")
    (services / "alerts" / "metrics.py").unlink()
    assert main([str(services)]) == 1
    shown = capsys.readouterr().err
    assert "2 difference(s) from the service template:" in shown
    assert "services/alerts/: missing metrics.py" in shown
    assert "services/points/saga.py: not a top-level role module" in shown
    assert main(["--help"]) == 2
