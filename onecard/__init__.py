"""Entry points: the `onecard` command, the process supervisor, the demo and its local servers; apart from the
gateway's core, which never imports them."""
