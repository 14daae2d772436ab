"""The chapters' experiments: the comparisons, ablations and studies whose numbers a chapter reports.
An experiment trains or loads networks (the shipped ones where their model cards match the run),
scores them and returns plain numbers for the chapter's tables and figures; it may call the recipes
that train the shipped networks (``recipes``), since it must train exactly as they do, but nothing in
the library calls an experiment, and ``pcfilter`` runs none."""
