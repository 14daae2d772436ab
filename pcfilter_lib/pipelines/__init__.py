"""Run-time steps around a filter that ``pcfilter`` calls on a user's scans (and that the chapters call
the same way): the Poisson surface of the points a filter keeps (``surface``). Nothing here trains a
network; it runs the shipped ones, or those a user gives."""
