"""Griffe extension: render the package's Sphinx-style roles as Markdown.

The docstrings in ``tractorish/`` use Sphinx roles (``:class:`Portal```,
``:meth:`run```). mkdocstrings renders Markdown, where a role would show up
literally. This extension rewrites each role, once the package is loaded,
into a cross-reference when its target is rendered on the API page (a
public name of ``tractorish`` or a documented public member of one), and
into a plain code span otherwise, so that no reference can dangle.
"""
from __future__ import annotations

import re
from typing import Any, Dict, Iterator, Optional

from griffe import Extension, Module, Object

_ROLE = re.compile(r':(?:py:)?(?:class|func|meth|mod|attr|exc|data|obj):`([^`]+)`')


def _walk(obj: Object) -> Iterator[Object]:
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _walk(member)  # type: ignore[arg-type]


def _rendered_member(cls: Object, name: str) -> bool:
    """True if ``cls.name`` is shown on the API page (public, documented)."""
    if name.startswith('_') or name not in cls.members:
        return False
    member = cls.members[name]
    try:
        return bool(member.docstring)
    except Exception:  # an alias that does not resolve
        return False


class SphinxRoles(Extension):
    """Rewrite ``:role:`target``` in every docstring of the package."""

    def on_package(self, *, pkg: Module, **kwargs: Any) -> None:
        public = self._public_names(pkg)
        by_canonical = {obj.path: name for name, obj in public.items()}
        for obj in _walk(pkg):
            if obj.docstring is None:
                continue
            owner = obj if obj.is_class else obj.parent
            owner_name = by_canonical.get(owner.path) if owner is not None else None
            obj.docstring.value = _ROLE.sub(
                lambda m: self._replace(m.group(1), pkg.path, public, owner_name),
                obj.docstring.value)

    @staticmethod
    def _public_names(pkg: Module) -> Dict[str, Object]:
        public: Dict[str, Object] = {}
        for name, member in pkg.members.items():
            if name.startswith('_') or not member.is_alias:
                continue
            try:
                public[name] = member.final_target  # type: ignore[union-attr]
            except Exception:  # not resolvable: leave it out
                continue
        return public

    @staticmethod
    def _replace(target: str, root: str, public: Dict[str, Object],
                 owner_name: Optional[str]) -> str:
        short = target.startswith('~')
        path = target.lstrip('~.').rstrip('()')
        label = path.rsplit('.', 1)[-1] if short else path
        ref = None
        head, _, rest = path.partition('.')
        if owner_name and not rest and _rendered_member(public[owner_name], head):
            ref = f'{root}.{owner_name}.{head}'
        elif head in public and not rest:
            ref = f'{root}.{head}'
        elif head in public and '.' not in rest and _rendered_member(public[head], rest):
            ref = f'{root}.{path}'
        return f'[`{label}`][{ref}]' if ref else f'`{label}`'
