"""Real-server test bed: a throwaway redis-server plus real celery beat/worker processes.

Nothing here fakes Redis or Celery; everything talks to real processes on 127.0.0.1.
"""
