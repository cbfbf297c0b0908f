"""Audit trails: row and DDL triggers switched from config, and the audit queries (``trail``)."""

from __future__ import annotations

from powrops.audit.trail import (
    ACTOR_SETTING as ACTOR_SETTING,
)
from powrops.audit.trail import (
    AFFECTED_USERS as AFFECTED_USERS,
)
from powrops.audit.trail import (
    AUDITED_TABLES as AUDITED_TABLES,
)
from powrops.audit.trail import (
    DATA_ACTIONS as DATA_ACTIONS,
)
from powrops.audit.trail import (
    DDL_ACTION as DDL_ACTION,
)
from powrops.audit.trail import (
    EVENT_TRIGGERS as EVENT_TRIGGERS,
)
from powrops.audit.trail import (
    OPTIONAL_METADATA as OPTIONAL_METADATA,
)
from powrops.audit.trail import (
    REPAIR_ACTION as REPAIR_ACTION,
)
from powrops.audit.trail import (
    ROW_TRIGGER as ROW_TRIGGER,
)
from powrops.audit.trail import (
    ROW_TRIGGER_DDL as ROW_TRIGGER_DDL,
)
from powrops.audit.trail import (
    ROWS_SETTING as ROWS_SETTING,
)
from powrops.audit.trail import (
    TrailStatus as TrailStatus,
)
from powrops.audit.trail import (
    access_patterns as access_patterns,
)
from powrops.audit.trail import (
    affected_users as affected_users,
)
from powrops.audit.trail import (
    apply_config as apply_config,
)
from powrops.audit.trail import (
    changed_columns as changed_columns,
)
from powrops.audit.trail import (
    changes_by_table as changes_by_table,
)
from powrops.audit.trail import (
    record as record,
)
from powrops.audit.trail import (
    row_history as row_history,
)
from powrops.audit.trail import (
    set_actor as set_actor,
)
from powrops.audit.trail import (
    status as status,
)
from powrops.audit.trail import (
    suppress_row_audit as suppress_row_audit,
)
from powrops.audit.trail import (
    system_changes as system_changes,
)
from powrops.audit.trail import (
    trigger_arguments as trigger_arguments,
)
