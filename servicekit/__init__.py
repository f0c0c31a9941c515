"""What every bread service is built from: settings, database, events, server."""
