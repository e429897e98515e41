"""
The port agent: one process per instrument that owns the instrument's link,
timestamps and frames every byte read, records all of it in a rotating
datalog, and shares the instrument with many clients.
"""
