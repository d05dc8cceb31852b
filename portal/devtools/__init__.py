"""Development tools: the start page at ``/``, the mail viewer and the SMS log.

Registered only when ``PORTAL_ENV=development`` (``make run``), and answering only
clients on this machine (loopback); everywhere else ``/`` is the plain 404 page and
``/dev/…`` does not exist. Every page is read-only.
"""
