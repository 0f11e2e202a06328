"""HTTP and websocket edge: validates everything, then calls the services."""
