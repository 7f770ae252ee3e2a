"""N2D2's TemplateParser: the ``[sec@file.tpl]`` template language (spec §1.3).

``{{NAME}}`` substitutes a parameter; control statements are ``{% if VAR OP [VALUE] %}``
(``==``, ``!=``, ``exists``, ``not_exists``) ``{% else %}`` ``{% endif %}``,
``{% for I in range([START,] END) %}`` ``{% endfor %}``, ``{% block ARR %}`` ``{% endblock %}``,
``{% set VAR %}`` ``{% endset %}`` and ``{% include FILE %}``.

Parsing lives in :mod:`n2prune.ini.template_parser`, the nodes and their rendering in
:mod:`n2prune.ini.template_nodes`. Rendering keeps, for every output line, the template file
and line it came from, so the INI reader can locate errors in generated sections. Errors are
ConfigErrors located in the template; one in an included file adds ``FILE:LINE: included from
here`` for each includer. The work is bounded (:class:`Budget`): a loop that never ends or a
file that is not a regular file fails with a located error.

>>> t = parse_template("[{{N}}_a]\\n{% if P exists %}P={{P}}\\n{% endif %}", "t.tpl")
>>> t.render({"N": "blk", "P": "1"}).text
'[blk_a]\\nP=1\\n'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

from n2prune.ini.files import MAX_TEMPLATE_BYTES, read_text_file
from n2prune.ini.template_nodes import (MAX_NESTING, MAX_OUTPUT_CHARS, MAX_STEPS, Budget,
                                        Node, Params, Rendered, _Output, cpp_double,
                                        render_all)
from n2prune.ini.template_parser import Parser, real_path

__all__ = ["Budget", "MAX_NESTING", "MAX_OUTPUT_CHARS", "MAX_STEPS", "Rendered", "Template",
           "cpp_double", "parse_template", "render_file"]


@dataclass
class Template:
    """A parsed template: call :meth:`render` with its parameters."""

    path: str
    nodes: List[Node]

    def render(self, params: Params, budget: Optional[Budget] = None) -> Rendered:
        """Render with a copy of ``params`` (for loops and set statements change it),
        charging ``budget`` (default: a fresh one for this render)."""
        out = _Output(budget or Budget())
        render_all(self.nodes, out, dict(params))
        return out.rendered()


def parse_template(text: str, path: str, opener: Optional[Callable[[str], str]] = None,
                   _stack: Tuple[str, ...] = (), budget: Optional[Budget] = None) -> Template:
    """Parse template ``text`` read from ``path``.

    ``{% include FILE %}`` is resolved relative to the including template's directory (N2D2
    uses the process working directory; resolving next to the includer is the predictable,
    safer choice) and read with ``opener`` (default: :func:`read_template`).
    """
    parser = Parser(text, path, opener or read_template, _stack + (real_path(path),),
                    budget or Budget())
    return Template(path, parser.parse())


def render_file(path: str, params: Params) -> Rendered:
    """Read, parse and render the template file ``path``."""
    budget = Budget()
    return parse_template(read_template(path), path, budget=budget).render(params, budget)


def read_template(path: str) -> str:
    """The text of template file ``path`` (a regular file of at most MAX_TEMPLATE_BYTES)."""
    return read_text_file(path, "template file", MAX_TEMPLATE_BYTES)
