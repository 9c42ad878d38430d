"""The routes of the recipients area (`vault.recipients`): recipients and their
subscriptions and secrets (admin), deliveries (admin, DPO) and acknowledgements (the
recipient's own API client)."""
