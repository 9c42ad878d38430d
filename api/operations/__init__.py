"""Health and readiness (`health`); the metrics endpoint is `api.metrics`."""
