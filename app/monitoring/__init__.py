"""Prediction monitoring: what each served signature sees and answers, against its training
profile (app/monitoring/README in docs/MONITORING.md)."""
