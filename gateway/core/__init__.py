"""What every other package may use: settings, the database pool and its migrations, logs, metrics,
traces, request ids and the loop every background task runs in. Imports no other gateway package."""
