"""The edge to batch queues (Slurm, Torque/PBS): pilot scripts, submission, polling, and
the server's pilot manager. The decisions themselves are pure, in park/scheduler/pilots.py.
"""
