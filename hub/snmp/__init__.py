"""The hub's own SNMP agent (CCHUB-MIB, ``mibs/CCHUB-MIB.txt``) and its alarm notifications.

``config`` (site-file section), ``mib`` (OIDs and the per-request view, sans-IO), ``rows``
(table rows and the provider registry other layers fill), ``sources`` (reading a running
hub), ``agent`` (pysnmp engine, responders and notification originator).
"""
