# -*- test-case-name: tests.test_station_config -*-
"""
An instrument's ``schedules`` table: each job's keys and the bounds of its
interval, checked before the driver checks the rest (the job's name, its
cron line and arguments).
"""

from __future__ import annotations

from collections.abc import Mapping

from instrumentd.station.config._keys import SCHEDULE
from instrumentd.station.config._table import Table


def _schedules(table: Table, schedules: Mapping[str, object]) -> dict[str, object]:
    """
    Check each job of an instrument's ``schedules``.

    :param table: the instrument's table.
    :param schedules: its ``schedules`` table.
    :returns: the jobs without problems here, for the driver to check.
    """
    from instrumentd.driver.errors import InstrumentParameterError
    from instrumentd.driver.scheduler import parse_jobs

    good: dict[str, object] = {}
    for name, job in schedules.items():
        if not isinstance(job, dict):
            # The driver says what a job must be.
            good[name] = job
            continue
        before = len(table.problems)
        entry = Table(job, table.key(f"schedules.{name}"), table.problems, SCHEDULE)
        entry.read_all()
        entry.done()
        trigger = job.get("trigger")
        if isinstance(trigger, dict) and trigger.get("type") == "interval":
            try:
                [parsed] = parse_jobs({name: job}, {name: name})
            except InstrumentParameterError:
                pass  # the driver reports it
            else:
                verdict = SCHEDULE["interval"].check_value(parsed.interval)
                if verdict.problem is not None:
                    entry.bad("trigger", f"an interval of {verdict.problem}")
        if len(table.problems) == before:
            good[name] = job
    return good
