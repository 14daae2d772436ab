"""pcfilter_lib.book: a chapter's one-call start, the gluing of several values in one call, as the
book's build reads them (myst_nb's glue: a display whose mime types carry the papermill prefix), and
the appendix's list of chapters and table and figure of what they cost."""

import subprocess
import sys

import numpy as np
import pytest
from IPython.utils.capture import capture_output

from pcfilter_lib import book

PREFIX = "application/papermill.record/"



def glued(outputs) -> dict[str, str]:
    """{name: text/plain value} of the glue records among captured display outputs; each record must
    be hidden (display=False: every mime type prefixed)."""
    found = {}
    for output in outputs:
        record = output.metadata["scrapbook"]
        assert record["mime_prefix"] == PREFIX
        assert all(mime.startswith(PREFIX) for mime in output.data)
        found[record["name"]] = output.data[PREFIX + "text/plain"]
    return found


def test_glue_records_every_value_under_its_name(shell):
    with capture_output() as captured:
        book.glue(ratio_low=1.75, count=3, verdict="closer to", **{"span_32": 19})
    assert glued(captured.outputs) == {"ratio_low": "1.75", "count": "3", "verdict": "'closer to'",
                                       "span_32": "19"}
    assert captured.stdout == ""  # nothing shows in the cell


def test_glue_stores_numpy_scalars_as_python_numbers(shell):
    # The prose formats them, {glue:text}`share:.1%`, which needs "0.25", not "np.float64(0.25)".
    with capture_output() as captured:
        book.glue(share=np.float64(0.25), sites=np.int64(7), flag=np.bool_(True))
    assert glued(captured.outputs) == {"share": "0.25", "sites": "7", "flag": "True"}


def test_glue_writes_what_myst_nbs_own_glue_writes(shell):
    """book.glue writes the record itself (importing myst_nb's glue costs seconds in every kernel): the
    same mime types, data and metadata, so that a change in myst_nb's format fails here, not in the build."""
    from myst_nb import glue as myst_glue

    values = {"ratio": 1.75, "verdict": "closer to", "table": np.arange(3)}
    with capture_output() as ours:
        book.glue(**values)
    with capture_output() as theirs:
        for name, value in values.items():
            myst_glue(name, value, display=False)
    assert [(o.data, o.metadata) for o in ours.outputs] == [(o.data, o.metadata) for o in theirs.outputs]


def test_start_sets_up_prints_one_line_and_answers_progress(shell, monkeypatch):
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.setenv("PCFILTER_FAST", "1")
    with capture_output() as captured:
        progress = book.start("02_3d_representations", seed=3)
    assert progress is False
    line = captured.stdout.strip()
    assert line.startswith("Keras 3.") and line.endswith("backend; fast mode: small data and short training"), line
    assert captured.outputs == []  # nothing displayed or glued: the appendix holds the run times
    drawn = np.random.random(3)
    np.random.seed(3)  # what start seeded NumPy's global generator with
    np.testing.assert_array_equal(drawn, np.random.random(3))
    monkeypatch.setenv("PCFILTER_FAST", "0")
    with capture_output() as captured:
        book.start("02_3d_representations", seed=3)
    assert captured.stdout.strip().endswith("backend"), captured.stdout
    monkeypatch.setenv("JPY_SESSION_NAME", "chapter.ipynb")  # a kernel JupyterLab started
    with capture_output():
        assert book.start("02_3d_representations") is True


@pytest.mark.parametrize("name", ["", "book/02_3d_representations", "02_3d_representations.ipynb"])
def test_start_refuses_a_path_or_a_file_name(name):
    with pytest.raises(ValueError, match="without folder and suffix"):
        book.start(name)


def test_importing_the_helper_loads_no_deep_learning_stack():
    # start() must be the first to import TensorFlow, so that runtime.setup keeps its logs quiet.
    code = ("import sys; import pcfilter_lib.book; "
            "print(sorted({'keras', 'tensorflow', 'open3d'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def write_notebook(path, heading):
    import nbformat

    cell = nbformat.v4.new_markdown_cell(f"# {heading}\n\nText.")
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)


def test_chapters_are_the_numbered_notebooks_of_the_table_of_contents(tmp_path):
    folder = tmp_path / "book"
    folder.mkdir()
    (folder / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nparts:\n  - caption: Chapters\n    chapters:\n"
        "      - file: 01_first\n      - file: 04_fourth\n        sections:\n          - file: 04b_more\n"
        "  - caption: Appendix\n    chapters:\n      - file: how_this_book_is_made\n"
        "  - caption: Reference\n    chapters:\n      - file: api\n")
    for name, heading in [("intro", "Intro"), ("01_first", "First steps"), ("04_fourth", "Fourth"),
                          ("04b_more", "More: of the fourth"), ("how_this_book_is_made", "How"),
                          ("99_unlisted", "Not in the table")]:
        write_notebook(folder / f"{name}.ipynb", heading)
    expected = [book.Chapter("01_first", "1", "First steps"), book.Chapter("04_fourth", "4", "Fourth"),
                book.Chapter("04b_more", "4b", "More: of the fourth")]
    assert book.chapters(folder) == expected
    assert book.chapters(tmp_path) == expected  # from the checkout above book/
    with pytest.raises(FileNotFoundError, match="_toc.yml"):
        book.chapters(tmp_path.parent / "elsewhere")


def test_the_cost_table_and_figure_say_what_was_not_measured():
    import matplotlib

    matplotlib.use("Agg")
    from pcfilter_lib.timing.book_times import BookCosts, ChapterCost

    found = [book.Chapter("01_a", "1", "First"), book.Chapter("02_b", "2", "Second")]
    costs = BookCosts([ChapterCost("01_a", 150.0, 2048.0), ChapterCost("02_b", None, 512.0)],
                      "2 CPU cores", "2026-11-27", "2 CPU cores", "2026-11-27")
    # 2,048 MiB is 2.1 GB (10^9 bytes)
    assert book.cost_table(found, costs).rows == [["1. First", "2.5 min", "2.1 GB"],
                                                  ["2. Second", "not measured", "0.5 GB"]]
    fig = book.plot_costs(found, costs)
    times, memory = fig.axes
    assert [t.get_text() for t in times.get_yticklabels()] == ["1. First", "2. Second"]
    assert "(min)" in times.get_xlabel() and "(GB)" in memory.get_xlabel()
    assert [p.get_width() for p in times.patches] == [2.5, 0]
    assert [t.get_text().strip() for t in times.texts] == ["2.5", "not measured"]
    assert "2 CPU cores (2026-11-27)" in fig.texts[0].get_text()  # the suptitle names the machine
