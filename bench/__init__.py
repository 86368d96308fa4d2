"""`nox -s bench`: measured performance of the notes service and of the kit around it."""
