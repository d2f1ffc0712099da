"""Generate the public Python (and later Node) surface from spec/api.yaml.

`python -m codegen` regenerates in place; `python -m codegen --check` fails,
listing files, when regenerating would change anything. See docs/codegen.md.
"""

from codegen.render import GENERATED_DIRS, REPO_ROOT, RenderError, generate
from codegen.spec import SpecError, load

__all__ = [
    "GENERATED_DIRS",
    "REPO_ROOT",
    "RenderError",
    "SpecError",
    "generate",
    "load",
]
