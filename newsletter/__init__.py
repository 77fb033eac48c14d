"""newsletter: articles on disk -> email editions, written to files or sent over SMTP.

The pipeline, one module per stage: load -> render -> inline -> verify -> compose -> deliver. `pipeline` holds the
functions the command line calls; they are the library API.
"""

__version__ = "0.1.0"
