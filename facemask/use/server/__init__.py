"""`facemask serve`: the production HTTP server (FastAPI on uvicorn) and its page.

run.py starts it; app.py is the API and the page; pool.py the worker processes and their bounded queue;
worker.py what each worker runs (its own detector and TFLite interpreter); model.py which TFLite file
the workers load and the version every answer names; page/ the HTML and JavaScript served at `/`.
"""
