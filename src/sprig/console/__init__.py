"""The local web console: the device live in a browser, served by the core itself.

* :mod:`sprig.console.server`: the listener (``console:`` in config.yaml), one-time login links
  for ``sprig console login``; imported by the core only when the console is enabled;
* :mod:`sprig.console.auth`: login links, sessions, and the checks every request passes (Host,
  Origin, Fetch metadata, CSRF);
* :mod:`sprig.console.app`: the JSON API and the pages' assets, imported on the first request;
* :mod:`sprig.console.live`: the live channel (Server-Sent Events) fed by :mod:`sprig.events`
  and by the pub/sub subscriptions a page asks for;
* ``static/``: the pages (plain HTML, CSS and JavaScript modules: no build step, no CDN).

The console is a client of the core's *commands* (the management API's methods, the same the
CLI calls) and *events* (:class:`sprig.events.EventHub`); it reaches into nothing else.
"""
