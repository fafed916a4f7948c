"""Ray for work beyond one machine: joining a cluster, or starting one of this machine alone.

Batch prediction (:mod:`kdutils.inference.batch_engines`) and the teacher's scoring of a transfer
set (:mod:`kdutils.teacher.ray_scoring`) both run on Ray Data actor pools; this module is what they
share: importing Ray with one line saying how to install it, and a session that joins the cluster
at ``address`` (or Ray's own ``RAY_ADDRESS``) or else starts a local one on loopback, and shuts
down only what it started.

Cluster recipe (the README's): ``ray start --head`` on one machine, ``ray start --address=<head>:6379``
on the others, then the job with ``address="auto"``. The run folder must be on storage every node
sees: actors load the models from it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# ray itself is imported where a job uses it: an optional extra, and seconds to import.

# Ray actors ask for half a CPU: on a 2-core machine two actors of one CPU each hold both CPUs and
# Ray Data's read task never gets one (seen: the job hangs); the model runs one thread regardless.
ACTOR_CPUS = 0.5
INSTALL_HINT = "Ray is not installed: pip install -e '.[ray]' (pinned ray[data]; make setup installs it)"


class RayMissing(ImportError):
    """Ray (with Ray Data) is not installed; the message says how to install it."""


def import_ray() -> Any:
    """The ``ray`` module with Ray Data loaded; :class:`RayMissing` (with :data:`INSTALL_HINT`) if absent."""
    try:
        import ray
        import ray.data  # noqa: F401 - the [data] extra
    except ImportError:
        raise RayMissing(INSTALL_HINT) from None
    return ray


@contextmanager
def ray_session(address: str | None = None) -> Iterator[Any]:
    """Ray, connected for the duration of the block: yields the ``ray`` module.

    A Ray already initialised in this process is used as it is. Otherwise ``address`` (or Ray's own
    ``RAY_ADDRESS`` variable) names the cluster to join, e.g. ``"auto"`` or ``"10.0.0.5:6379"``;
    with neither, Ray starts a cluster of this machine alone, bound to 127.0.0.1. What this call
    started it shuts down on exit. Raises :class:`RayMissing` without Ray, and what ``ray.init``
    raises for an address with no cluster behind it (``ConnectionError``).
    """
    ray = import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        joining = address or os.environ.get("RAY_ADDRESS")
        local = {} if joining else {"_node_ip_address": "127.0.0.1"}
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR", **local)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        yield ray
    finally:
        if started_here:
            ray.shutdown()
