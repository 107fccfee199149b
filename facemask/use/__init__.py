"""Floor 3: using the champion: predict, detect, track, video, serve, export, explain, the MLflow pyfunc."""
