"""Paces the Dagster daemon of ``test_ui_graphql``'s ``dagster dev`` at 1 s instead of 30 s.

Dagster's backfill daemon sleeps a fixed ``DEFAULT_DAEMON_INTERVAL_SECONDS`` (30) between iterations,
and no instance setting changes it; an asset backfill needs two iterations (the range run, then the view
run once it finished), so the test spent about a minute asleep. Python imports this module at start-up
in every process whose PYTHONPATH names this folder; only the daemon (``python -m dagster._daemon``)
is changed, and it fails at once, loudly, should Dagster rename the constant.
"""

import sys

if sys.orig_argv[1:3] == ["-m", "dagster._daemon"]:
    import dagster._daemon.controller as controller

    if not hasattr(controller, "DEFAULT_DAEMON_INTERVAL_SECONDS"):
        raise RuntimeError("dagster._daemon.controller.DEFAULT_DAEMON_INTERVAL_SECONDS is gone")
    controller.DEFAULT_DAEMON_INTERVAL_SECONDS = 1
