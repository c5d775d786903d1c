"""Shared fixtures: the suite runs under its own pytest plugin.

``tractorish.testing`` gives every test its own secret, its own registry
address (``reg_addr``) and no access to the user's secret file
(``isolated_env``), and fails any test that leaves a process behind
(``no_leaked_processes``: the pytest process is a child subreaper, so an
actor orphaned by a test is re-parented here, where the guard finds it,
kills it and fails the test). Both are autouse.
"""
from __future__ import annotations

pytest_plugins = ['tractorish.testing']

