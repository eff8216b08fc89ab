"""docs/recipe-reference.md is what aip.recipe_reference generates from aip/config.py, and every field of the
core's recipe has the ``#:`` comment the page is made from."""

from __future__ import annotations

import dataclasses

from aip import recipe_reference
from tests.conftest import ROOT


def test_the_committed_page_is_what_the_generator_gives():
    page = (ROOT / "docs" / "recipe-reference.md").read_text(encoding="utf-8")
    assert page == recipe_reference.reference(), f"docs/recipe-reference.md is stale: {recipe_reference.COMMAND}"
    assert "[recipe reference](recipe-reference.md)" in (ROOT / "docs" / "recipes.md").read_text(encoding="utf-8")


def test_every_field_of_the_core_recipe_is_documented():
    assert recipe_reference.undocumented() == []
    keys = [k for k, _ in recipe_reference.sections()]
    assert keys == ["", "teacher", "teacher.fit", "student", "eval", "loss", "train"]


@dataclasses.dataclass(frozen=True)
class _Planted:
    #: a documented field,
    #: over two lines
    documented: int = 1
    bare: list[int] = dataclasses.field(default_factory=lambda: [1, 2])


def test_a_field_without_its_comment_is_found(monkeypatch):
    assert recipe_reference.field_docs(_Planted) == {"documented": "a documented field, over two lines"}
    monkeypatch.setattr(recipe_reference, "sections", lambda: [("planted", _Planted)])
    assert recipe_reference.undocumented() == ["planted.bare"]
    assert "| `bare` | `list[int]` | `[1, 2]` |  |" in recipe_reference.reference()
    assert recipe_reference.main() == 1
