"""The local web page of ``image-completion serve`` (see ``server.py``)."""
