"""Test helpers: paths of the provisioned host and stand-ins, the in-process host, the server and the browser."""
