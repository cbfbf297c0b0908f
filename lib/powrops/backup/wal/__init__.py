"""The WAL path: positions and file names (:mod:`.positions`, :mod:`.names`), the WAL archive's
push, fetch and a restore's spool (:mod:`.archive`), and the fast entry PostgreSQL's
``archive_command`` and ``restore_command`` start (:mod:`.entry`).

PostgreSQL runs this path once per WAL segment: nothing here is imported by this file, so
that ``wal push`` loads only what it uses."""
