"""In-memory fakes of the gateway's own ports (never of a library): the pipeline suite runs on them."""
