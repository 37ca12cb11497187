"""docs/schemas/ is what point-of-sale teams validate against before they publish: it must
be exactly what `make schemas` writes from the contracts today, file by file."""

from __future__ import annotations

from pathlib import Path

from shared.contracts.schemas import write_schemas

PUBLISHED = Path(__file__).parents[3] / "docs" / "schemas"


def schema_differences(generated: Path, published: Path) -> list[str]:
    """What a reader of `published` would get wrong: schemas missing, extra or changed."""
    made = {path.name: path.read_bytes() for path in generated.iterdir()}
    shown = {path.name: path.read_bytes() for path in published.iterdir() if path.is_file()}
    return (
        [f"missing: {name} (an event the contracts define)" for name in sorted(made - shown.keys())]
        + [
            f"extra: {name} (no contract defines it: delete it)"
            for name in sorted(shown.keys() - made)
        ]
        + [
            f"different: {name} (the contract changed)"
            for name in sorted(made.keys() & shown.keys())
            if made[name] != shown[name]
        ]
    )


def test_docs_schemas_are_the_ones_the_contracts_generate(tmp_path: Path) -> None:
    write_schemas(tmp_path)
    differences = schema_differences(tmp_path, PUBLISHED)
    assert differences == [], (
        "docs/schemas/ does not match the event contracts; run `make schemas`"
        " (it writes every schema; it deletes none):\n" + "\n".join(differences)
    )


def test_every_kind_of_difference_is_named(tmp_path: Path) -> None:
    """The comparison itself: a missing, an extra and a changed file are each reported."""
    generated, published = tmp_path / "generated", tmp_path / "published"
    write_schemas(generated)
    write_schemas(published)
    assert schema_differences(generated, published) == []
    names = sorted(path.name for path in generated.iterdir())
    (published / names[0]).unlink()
    (published / "purchase.teleported.v1.json").write_text("{}\n")
    changed = published / names[1]
    changed.write_bytes(changed.read_bytes().replace(b'"type"', b'"kind"', 1))
    assert schema_differences(generated, published) == [
        f"missing: {names[0]} (an event the contracts define)",
        "extra: purchase.teleported.v1.json (no contract defines it: delete it)",
        f"different: {names[1]} (the contract changed)",
    ]
