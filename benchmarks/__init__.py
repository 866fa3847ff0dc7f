"""Speed and accuracy benchmarks: scripts anyone can run (``python -m benchmarks.kernels``).

Each script measures our code against a reference in the same run and prints a table; the results, with
the command and the machine that produced them, are recorded in BENCHMARKS.md. Tests never assert
wall-clock times; these scripts do the measuring.
"""
