"""The routes of the admin area (`vault.admin`): API clients (`clients`)."""
