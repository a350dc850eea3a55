"""The database: tables, engine and migrations, full-text search, and the queries front ends need."""
