"""The Dext sandbox: the provisional items API over the sample set (see ``sandbox``), the
sample set itself (``samples``) and the sandbox as a child process (``process``)."""
