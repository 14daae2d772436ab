"""Run-time settings: the one place that reads ``PCFILTER_FAST`` and ``PCFILTER_DATA``.

``PCFILTER_FAST=1`` shrinks data and epochs so that every chapter runs in about two minutes on two
CPU cores (tests and CI use it); unset or ``0`` runs at full size. ``PCFILTER_DATA`` names the folder
for generated and downloaded data.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}

# The checkout this module lives in, if it is one (an editable install); None for a wheel install.
_REPO_ROOT = Path(__file__).resolve().parent.parent
if not (_REPO_ROOT / "pyproject.toml").is_file():
    _REPO_ROOT = None


def fast_mode() -> bool:
    """True when ``PCFILTER_FAST`` asks for the small, quick variant of every run."""
    raw = os.environ.get("PCFILTER_FAST", "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ValueError(
        f"PCFILTER_FAST={os.environ['PCFILTER_FAST']!r} is not understood: "
        "use 1 for the fast variant or 0 (or leave it unset) for full size"
    )


def choose(full: T, fast: T) -> T:
    """Answer "how big?": ``fast`` in fast mode, ``full`` otherwise.

    Every size, count and epoch number that depends on the mode goes through this function, e.g.
    ``epochs = config.choose(full=40, fast=2)``.
    """
    return fast if fast_mode() else full


def worker_wait() -> float:
    """Seconds a running ``--scheduler`` may take to have a worker before a run is refused:
    ``PCFILTER_WORKER_WAIT``, default 10 (raise it for a cluster whose workers start slowly)."""
    raw = os.environ.get("PCFILTER_WORKER_WAIT", "").strip()
    if not raw:
        return 10.0
    try:
        seconds = float(raw)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < float("inf"):
        raise ValueError(f"PCFILTER_WORKER_WAIT={raw!r} is not understood: give a number of seconds above 0, "
                         "or leave it unset for 10")
    return seconds


def data_dir() -> Path:
    """The folder for generated and downloaded data (not created here).

    ``PCFILTER_DATA`` if set; otherwise ``data/`` in the source checkout (git-ignored), or
    ``~/.cache/pcfilter`` when the package is installed from a wheel.
    """
    raw = os.environ.get("PCFILTER_DATA", "").strip()
    if raw:
        return Path(raw).expanduser().resolve()
    if _REPO_ROOT is not None:
        return _REPO_ROOT / "data"
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "pcfilter"


def show_progress() -> bool:
    """Whether a chapter's long cells should draw progress bars.

    True in a kernel that a Jupyter server started for a person (JupyterLab and Notebook set
    ``JPY_SESSION_NAME`` for it); False when a book build or a benchmark executes the notebook, so
    that the built pages hold no progress widgets, whose scripts would be fetched from the internet.
    """
    return bool(os.environ.get("JPY_SESSION_NAME", "").strip())


def describe() -> dict[str, str]:
    """The settings in force, as strings, for reports and ``pcfilter info``."""
    return {"fast_mode": str(fast_mode()), "data_dir": str(data_dir())}
