"""The CivicQ database: migrations, seed data, reset and the schema reference."""
