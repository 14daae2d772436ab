"""Measuring: honest timings (``clock``), the fixed workloads of ``pcfilter bench`` (``workloads``;
their names in ``names``), the classifiers' speed (``classifier_speed``) and the book's chapter times
(``book_times``).

The scripts that run these measurements and commit their results live in ``benchmarks/`` at the top of
the repository; ``pcfilter_lib.cli.workload_process`` is the process that runs one workload.
"""
