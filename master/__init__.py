"""The kubelite master: API server, scheduler and controllers."""
