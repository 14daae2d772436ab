"""A local Sphinx extension for the API reference page (book/api.md).

Two jobs:

* Autodoc imports every module of ``pcfilter_lib``, and most of them import Keras and therefore
  TensorFlow, whose start-up notes (oneDNN, missing CUDA drivers) would fill the build log.
  ``pcfilter_lib.runtime.setup`` imports the deep-learning stack once with those notes captured,
  before autodoc imports anything.
* The directive ``pcfilter-modules`` documents every module of one stage of the library (a
  sub-package such as ``geometry``, or a single module such as ``labels``), so that a module added
  to the library appears in the reference without anyone having to remember the page. Modules
  listed in the directive's content come first, in that order (the order of the pipeline); the
  others follow alphabetically.
"""

from __future__ import annotations

import importlib
import pkgutil

from docutils import nodes
from docutils.parsers.rst import Directive
from docutils.statemachine import StringList

PACKAGE = "pcfilter_lib"


def stage_modules(stage: str, first: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The dotted names of the modules of one stage of the library, in reading order.

    Args:
        stage: a sub-package of ``pcfilter_lib`` ("geometry") or a top-level module ("labels").
        first: short names of modules ("point_checks", "sampling") to put first, in this order.

    Returns:
        Full module names, such as "pcfilter_lib.geometry.point_checks": the package itself when it is a
        single module, otherwise its modules (private ones, starting with "_", left out).

    Raises:
        ValueError: ``first`` names a module the stage does not have.
    """
    module = importlib.import_module(f"{PACKAGE}.{stage}")
    if not hasattr(module, "__path__"):  # a single module such as labels.py
        return [module.__name__]
    found = sorted(info.name for info in pkgutil.iter_modules(module.__path__) if not info.name.startswith("_"))
    missing = [name for name in first if name not in found]
    if missing:
        raise ValueError(f"{PACKAGE}.{stage} has no module {', '.join(missing)}; found {', '.join(found)}")
    ordered = list(first) + [name for name in found if name not in first]
    return [f"{module.__name__}.{name}" for name in ordered]


class ModulesDirective(Directive):
    """``.. pcfilter-modules:: STAGE`` with optional content, one module short name per line, that
    orders the first modules. Expands to an ``automodule`` with ``:members:`` per module."""

    required_arguments = 1
    has_content = True

    def run(self):
        first = [line.strip() for line in self.content if line.strip()]
        try:
            names = stage_modules(self.arguments[0], first)
        except (ImportError, ValueError) as error:
            raise self.error(f"pcfilter-modules {self.arguments[0]}: {error}") from error
        source = self.state_machine.get_source(self.lineno)
        lines = StringList()
        for name in names:
            for text in (f".. automodule:: {name}", "   :members:", ""):
                lines.append(text, source, self.lineno)
        holder = nodes.Element()  # collects the parsed nodes; only its children are returned
        holder.document = self.state.document
        self.state.nested_parse(lines, self.content_offset, holder)
        return holder.children


def setup(app) -> dict:
    """Import the deep-learning stack quietly and register ``pcfilter-modules``.

    Args:
        app: the Sphinx application.

    Returns:
        The extension's metadata: it keeps no state, so parallel reading and writing are safe.
    """
    from pcfilter_lib import runtime

    runtime.setup(seed=None)
    app.add_directive("pcfilter-modules", ModulesDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
