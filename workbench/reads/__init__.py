"""The read layer: frames from the database for jobs, notebooks, dashboards and the command line.

* :mod:`workbench.reads.selection`: which customers a run bills, who is invoiced already;
* :mod:`workbench.reads.runs`: billing runs, their invoices, control report and comparison;
* :mod:`workbench.reads.customers`: a customer's profile;
* :mod:`workbench.reads.calls`: what rating reads, rejected records, traffic and consumption.

Nothing here writes.
"""
