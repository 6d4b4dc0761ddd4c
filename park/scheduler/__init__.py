"""The scheduler: a pure policy deciding which queued units a worker is granted
(`policy.grant`), why a job waits (`explain`), and the numbers it uses (`config`)."""
