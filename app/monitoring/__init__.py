"""Prediction monitoring: what each served signature sees and answers, against its training
profile (README, "Monitoring")."""
