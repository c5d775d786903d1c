"""nox sessions: tests on every supported Python, docs, mypy, benchmarks.

``nox`` alone runs the default sessions (tests on 3.11, docs);
``nox -s tests`` runs the suite on every Python found; arguments after
``--`` go to pytest (``tests``) or to ``bench/run.py`` (``bench``).
"""
from __future__ import annotations

import glob
import os
import re

import nox

PYTHONS = ['3.10', '3.11', '3.12', '3.13']
DEFAULT_PYTHON = '3.11'

nox.options.sessions = [f'tests-{DEFAULT_PYTHON}', 'docs']


def _put_pyenv_pythons_on_path() -> None:
    """Let nox find pyenv-installed interpreters that pyenv does not activate.

    pyenv's shims answer to ``python3.10`` even when that version is not
    selected, and then fail; nox would take the shim. Putting each
    version's own ``bin`` first on ``PATH`` (the newest patch release of
    each minor version) makes nox find the real interpreter.
    """
    root = os.environ.get('PYENV_ROOT') or os.path.expanduser('~/.pyenv')
    newest: dict = {}
    for bin_dir in glob.glob(os.path.join(root, 'versions', '*', 'bin')):
        match = re.fullmatch(r'(\d+)\.(\d+)\.(\d+)', os.path.basename(os.path.dirname(bin_dir)))
        if not match:
            continue
        major, minor, patch = map(int, match.groups())
        key = f'{major}.{minor}'
        if key in PYTHONS and (key not in newest or patch > newest[key][0]):
            newest[key] = (patch, bin_dir)
    path = os.environ.get('PATH', '').split(os.pathsep)
    extra = [bin_dir for _, bin_dir in newest.values() if bin_dir not in path]
    if extra:
        os.environ['PATH'] = os.pathsep.join(extra + path)


_put_pyenv_pythons_on_path()


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The test suite; ``nox -s tests-3.12 -- -k spawn`` passes ``-k spawn`` on."""
    session.install('-e', '.[test]')
    session.run('pytest', *session.posargs)


@nox.session(python=DEFAULT_PYTHON)
def docs(session: nox.Session) -> None:
    """Build the documentation site into ``site/``; any warning fails it."""
    session.install('-e', '.[docs]')
    session.run('mkdocs', 'build', '--strict')


@nox.session(python=DEFAULT_PYTHON)
def mypy(session: nox.Session) -> None:
    """Type-check the package (settings in pyproject.toml)."""
    session.install('mypy', '-e', '.')
    session.run('mypy', 'tractorish')


@nox.session(python=DEFAULT_PYTHON)
def bench(session: nox.Session) -> None:
    """Run the benchmarks; ``nox -s bench -- --quick`` passes ``--quick`` on."""
    session.install('-e', '.', 'trio-parallel', 'psutil')
    session.run('python', 'bench/run.py', *session.posargs)
