"""Examples shipped with the package, so that ``spoe-sync agent`` and
``spoe-sync demo`` work from a plain ``pip install``.

* :mod:`spoe_sync.examples.iprep`: the IP-reputation agent of SPOE.txt §2.5.
* ``spoe-iprep.conf``: its SPOE configuration (:data:`~spoe_sync.examples.iprep.CONFIG_PATH`).
"""
