# IPython configuration for the kernels that tests and builds start (IPYTHONDIR=tests/ipython).
c = get_config()  # noqa: F821

# Both %sql packages (JupySQL and ipython-sql) only print SQL errors by default, so a broken
# query would pass under nbval. In tests a bad query must fail its cell.
c.SqlMagic.short_errors = False

# Many kernels run at once in tests: no shared history database to lock or to leave behind.
c.HistoryManager.enabled = False
