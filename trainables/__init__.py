"""Worker-side code: everything that runs inside a Ray task, a Ray Data step, a Train worker or
a Tune trial. It must import neither ``platform`` (workers see the stdlib module) nor the
driver package ``soundsweep``.
"""
