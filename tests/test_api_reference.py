"""The API reference page (book/api.md): every stage of the library has a section, and the
``pcfilter-modules`` directive of book/_ext/api_reference.py finds every module of a stage."""

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "book" / "_ext"))

from api_reference import stage_modules  # noqa: E402
from test_layout import STAGES  # noqa: E402


def documented_stages() -> list[str]:
    return re.findall(r"^\.\. pcfilter-modules:: (\w+)$", (ROOT / "book" / "api.md").read_text(), flags=re.M)


def test_every_stage_has_its_section_in_pipeline_order():
    assert documented_stages() == list(STAGES)


def test_a_stage_lists_every_module_with_the_named_ones_first():
    files = sorted(p.stem for p in (ROOT / "pcfilter_lib" / "geometry").glob("*.py") if not p.stem.startswith("_"))
    names = stage_modules("geometry", ["sampling", "point_checks"])
    assert names[:2] == ["pcfilter_lib.geometry.sampling", "pcfilter_lib.geometry.point_checks"]
    assert sorted(names) == [f"pcfilter_lib.geometry.{f}" for f in files]
    assert stage_modules("labels") == ["pcfilter_lib.labels"]


def test_a_module_named_but_missing_is_an_error():
    with pytest.raises(ValueError, match="has no module nowhere"):
        stage_modules("geometry", ["nowhere"])
