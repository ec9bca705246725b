"""The serving core: one predict path, batching, admission, the circuit breaker."""
