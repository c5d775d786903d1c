"""``NamespacePath``: a function named as ``'module.path:name'`` (tractor's form)."""
from __future__ import annotations

import importlib
from typing import Any, Tuple


class NamespacePath(str):
    """A reference to a module-level object: ``'package.module:name'``."""

    @classmethod
    def from_ref(cls, ref: Any) -> 'NamespacePath':
        """The path of ``ref`` (a module-level function or class)."""
        module = getattr(ref, '__module__', None)
        name = getattr(ref, '__qualname__', None)
        if not module or not name or '<' in name:
            raise TypeError(f'{ref!r} is not a module-level object: it has no path')
        return cls(f'{module}:{name}')

    def to_tuple(self) -> Tuple[str, str]:
        """``('package.module', 'name')``."""
        module, sep, name = self.partition(':')
        if not sep or not module or not name:
            raise ValueError(f"{str(self)!r} is not a 'module:name' path")
        return module, name

    def load_ref(self) -> Any:
        """Import the module and return the object the path names."""
        module_name, name = self.to_tuple()
        obj: Any = importlib.import_module(module_name)
        for part in name.split('.'):
            obj = getattr(obj, part)
        return obj
