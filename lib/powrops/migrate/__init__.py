"""Schema migrations: alembic plans (``plan``), production migrations (``production``) and their
safeguards (``safeguards``)."""

from __future__ import annotations

from powrops.migrate.plan import (
    CONNECT_TIMEOUT_S as CONNECT_TIMEOUT_S,
)
from powrops.migrate.plan import (
    REVISION_ID as REVISION_ID,
)
from powrops.migrate.plan import (
    AlembicErrors as AlembicErrors,
)
from powrops.migrate.plan import (
    Revision as Revision,
)
from powrops.migrate.plan import (
    RevisionStatus as RevisionStatus,
)
from powrops.migrate.plan import (
    alembic_config as alembic_config,
)
from powrops.migrate.plan import (
    current as current,
)
from powrops.migrate.plan import (
    downgrade as downgrade,
)
from powrops.migrate.plan import (
    heads as heads,
)
from powrops.migrate.plan import (
    offline_sql as offline_sql,
)
from powrops.migrate.plan import (
    project_root as project_root,
)
from powrops.migrate.plan import (
    revision_sql as revision_sql,
)
from powrops.migrate.plan import (
    revision_timestamp as revision_timestamp,
)
from powrops.migrate.plan import (
    revision_transaction as revision_transaction,
)
from powrops.migrate.plan import (
    revisions as revisions,
)
from powrops.migrate.plan import (
    rollback as rollback,
)
from powrops.migrate.plan import (
    schema_diff as schema_diff,
)
from powrops.migrate.plan import (
    sqlalchemy_url as sqlalchemy_url,
)
from powrops.migrate.plan import (
    status as status,
)
from powrops.migrate.plan import (
    upgrade as upgrade,
)
from powrops.migrate.plan import (
    upgrade_with_session as upgrade_with_session,
)
