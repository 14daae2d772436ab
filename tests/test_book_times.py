"""The chapters' measured run times and kernel memory, as the appendix reads them, and the times a
build's execution cache stored."""

import json

import pytest

from pcfilter_lib.timing import book_times


def write(path, data):
    path.write_text(json.dumps(data))
    return path


def test_the_latest_full_size_run_per_device_counts_and_two_cores_win(tmp_path):
    rows = [{"chapter": "02_x", "size": "full", "seconds": 900.0, "cpu_cores": 2, "gpu": None},
            {"chapter": "02_x", "size": "full", "seconds": 474.0, "cpu_cores": 2, "gpu": None},
            {"chapter": "02_x", "size": "fast", "seconds": 60.0, "cpu_cores": 2, "gpu": None},
            {"chapter": "02_x", "size": "full", "seconds": 95.0, "cpu_cores": 16, "gpu": "NVIDIA H100"},
            {"chapter": "03_y", "size": "full", "seconds": 30.0, "cpu_cores": 2, "gpu": None},
            {"mode": "full", "chapter": "02_x", "seconds": 200.0, "cpu_cores": 16, "gpu": ""}]
    found = book_times.full_size_times(book_times.read_rows(write(tmp_path / "t.json", {"rows": rows})), "02_x")
    assert found["cpu"]["seconds"] == 474.0  # the later two-core run; 16 cores do not replace it
    assert found["gpu"]["seconds"] == 95.0
    assert book_times.full_size_times(rows[2:3], "02_x") == {}
    assert [book_times.format_duration(s) for s in (45, 474)] == ["45 s", "7.9 min"]


def test_the_machine_is_named_where_every_run_had_the_same_one():
    amd = {"cpu_cores": 2, "cpu": "AMD EPYC (AVX2)"}
    assert book_times.where_timed([amd, amd]) == "2 CPU cores of an AMD EPYC (AVX2)"
    assert book_times.where_timed([amd, {"cpu_cores": 2, "cpu": "Intel(R) Xeon(R)"}]) == "2 CPU cores"
    assert book_times.where_timed([amd, {"cpu_cores": 4}]) == "2 or 4 CPU cores"
    assert book_times.where_timed([{}]) == "a CPU"


def test_damaged_file_is_refused_with_its_name(tmp_path):
    path = tmp_path / "t.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="t.json"):
        book_times.read_rows(path)
    with pytest.raises(ValueError, match="no list of rows"):
        book_times.read_rows(write(path, {"rows": 3}))


def test_rows_written_are_read_back_and_a_run_again_replaces_its_row(tmp_path):
    device = {"cores": 2, "cpu": "AMD EPYC (AVX2)", "gpus": [], "tensorflow": "2.20.0"}
    first = [book_times.time_row("02_x", "full", 474.04, device, load_average=1.5),
             book_times.time_row("03_y", "full", 30.0, device)]
    path = book_times.write_rows(tmp_path / "results" / "times.json", first)
    assert book_times.read_rows(path) == first
    assert first[0]["seconds"] == 474.0 and first[0]["gpu"] is None
    again = book_times.time_row("02_x", "full", 500.0, device, source="book build")
    gpu = book_times.time_row("02_x", "full", 95.0, {**device, "gpus": ["NVIDIA H100"]})
    rows = book_times.merge(book_times.read_rows(path), [again, gpu])
    assert [(r["chapter"], r["seconds"]) for r in rows] == [("03_y", 30.0), ("02_x", 500.0), ("02_x", 95.0)]
    book_times.write_rows(path, rows)
    assert book_times.full_size_times(book_times.read_rows(path), "02_x")["cpu"]["seconds"] == 500.0
    table = path.with_suffix(".md").read_text().splitlines()
    assert len(table) == 2 + 3  # header, rule, then CPU-only rows by chapter before the GPU's
    assert table[2].startswith("| 02_x | full | 500 ") and table[2].endswith("| one whole `make book` |")
    assert "NVIDIA H100" in table[4]


def test_find_results_looks_in_the_checkout_above(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "book").mkdir()
    assert book_times.find_results(tmp_path / "book") is None
    results = tmp_path / book_times.RESULTS
    results.parent.mkdir(parents=True)
    write(results, [])
    assert book_times.find_results(tmp_path / "book") == results


def test_execution_times_are_read_from_the_books_cache(tmp_path):
    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.executors import load_executor

    notebook = tmp_path / "07_z.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import time\ntime.sleep(0.5)")]),
                   notebook)
    assert book_times.cached_execution_seconds([notebook], tmp_path / "cache") == {}
    cache = get_cache(tmp_path / "cache")
    cache.add_nb_to_project(str(notebook))
    load_executor("local-serial", cache).run_and_cache()
    seconds, when = book_times.cached_execution_seconds([notebook], tmp_path / "cache")["07_z"]
    assert 0.5 <= seconds < 60 and when.tzinfo is not None
    # a notebook whose code changed since the build has no time yet
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)")]), notebook)
    assert book_times.cached_execution_seconds([notebook], tmp_path / "cache") == {}


def test_the_kernel_watcher_records_each_kernels_peak_memory(tmp_path):
    import runpy
    import sys
    import time
    from pathlib import Path

    watcher = runpy.run_path(str(Path(__file__).resolve().parent.parent / "benchmarks" / "kernel_memory.py"))
    # A stand-in kernel: a process whose command line names ipykernel_launcher and that holds memory.
    script = tmp_path / "ipykernel_launcher.py"
    script.write_text("import time\nblock = bytearray(64 * 2**20)\nblock[::4096] = b'x' * len(block[::4096])\n"
                      "time.sleep(1.5)\n")
    status, rows = watcher["watch"]([sys.executable, str(script)], interval=0.2)
    assert status == 0 and len(rows) == 1
    assert rows[0]["peak_mb"] >= 64 and rows[0]["last_seen"] >= rows[0]["first_seen"]
    assert watcher["executed_since"](time.time() + 3600) == []


def test_chapter_costs_pair_each_chapters_time_with_its_kernels_peak_memory(tmp_path):
    times = write(tmp_path / "book_times.json", {"rows": [
        {"chapter": "01_a", "size": "full", "seconds": 21.7, "cpu_cores": 2, "cpu": "Intel Xeon", "gpu": None,
         "measured": "2026-11-26T12:44:42+00:00"},
        {"chapter": "02_b", "size": "full", "seconds": 117.7, "cpu_cores": 2, "cpu": "Intel Xeon", "gpu": None,
         "measured": "2026-11-27T12:46:39+00:00"},
        {"chapter": "02_b", "size": "fast", "seconds": 50.0, "cpu_cores": 2, "gpu": None},
        {"chapter": "03_c", "size": "full", "seconds": 9.0, "cpu_cores": 16, "gpu": "NVIDIA H100"}]})
    write(tmp_path / "kernel_memory.json", {"measured": "2026-11-27T13:05:53+00:00", "size": "full",
                                            "machine": "AMD EPYC", "cpu_cores": 2,
                                            "rows": [{"chapter": "02_b", "peak_mb": 3667},
                                                     {"pid": 7, "peak_mb": 100}]})
    costs = book_times.chapter_costs(["01_a", "02_b", "03_c"], times)
    assert costs.chapters == [book_times.ChapterCost("01_a", 21.7, None),
                              book_times.ChapterCost("02_b", 117.7, 3667.0),
                              book_times.ChapterCost("03_c", None, None)]  # a GPU run is not a CPU time
    assert costs.timed_on == "2 CPU cores of an Intel Xeon" and costs.timed == "2026-11-26 to 2026-11-27"
    assert (costs.memory_on, costs.memory_measured) == ("2 CPU cores of an AMD EPYC", "2026-11-27")
    (tmp_path / "empty").mkdir()
    nothing = book_times.chapter_costs(["01_a"], tmp_path / "empty" / "book_times.json")
    assert nothing == book_times.BookCosts([book_times.ChapterCost("01_a", None, None)], "", "", "", "")
    write(tmp_path / "kernel_memory.json", {"rows": 3})
    with pytest.raises(ValueError, match="kernel_memory.py"):
        book_times.chapter_costs(["01_a"], times)
