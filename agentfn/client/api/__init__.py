"""One typed method per library function, grouped by area; mixed into Client and AsyncClient."""
