"""HTTP controllers: thin, one per area; domain work happens in `vault/`."""
