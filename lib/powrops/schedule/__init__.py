"""The schedule: one job per configured task, as cron lines or systemd units (``jobs``)."""

from __future__ import annotations

from powrops.schedule.jobs import (
    DAY as DAY,
)
from powrops.schedule.jobs import (
    QUARTER_MONTHS as QUARTER_MONTHS,
)
from powrops.schedule.jobs import (
    WEEKDAYS as WEEKDAYS,
)
from powrops.schedule.jobs import (
    Calendar as Calendar,
)
from powrops.schedule.jobs import (
    Field as Field,
)
from powrops.schedule.jobs import (
    Job as Job,
)
from powrops.schedule.jobs import (
    Paths as Paths,
)
from powrops.schedule.jobs import (
    Step as Step,
)
from powrops.schedule.jobs import (
    calendar as calendar,
)
from powrops.schedule.jobs import (
    command as command,
)
from powrops.schedule.jobs import (
    cron_entry as cron_entry,
)
from powrops.schedule.jobs import (
    crontab as crontab,
)
from powrops.schedule.jobs import (
    jobs as jobs,
)
from powrops.schedule.jobs import (
    paths as paths,
)
from powrops.schedule.jobs import (
    service_unit as service_unit,
)
from powrops.schedule.jobs import (
    systemd_units as systemd_units,
)
from powrops.schedule.jobs import (
    timer_unit as timer_unit,
)
from powrops.schedule.jobs import (
    unit_name as unit_name,
)
