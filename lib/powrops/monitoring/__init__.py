"""Monitoring: metric snapshots (``metrics``), growth and its forecast (``growth``), alert
thresholds (``alerts``), maintenance (``maintenance``) and initial-setup readiness
(``readiness``), each with what its report shows."""
