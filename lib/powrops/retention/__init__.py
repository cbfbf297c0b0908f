"""Retention policies, archival, cleanup and GDPR requests (the strategy's data retention and
data privacy sections).

- :mod:`~powrops.retention.cleanup`: temp data, cache entries, sessions (batched deletes);
- :mod:`~powrops.retention.archival`: a user's workouts and sets to compressed, validated,
  indexed files in the archive repository, and back;
- :mod:`~powrops.retention.policies`: the retention policies from config, planned and applied;
- :mod:`~powrops.retention.gdpr` / :mod:`~powrops.retention.consent`: export, erasure, consents;
- :mod:`~powrops.retention.journal`: what each run did, in ``ops.events`` and ``audit_log``.
"""

from __future__ import annotations
