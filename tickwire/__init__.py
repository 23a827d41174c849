"""The ``tickwire`` command and what runs above the services: the local supervisor, local servers, the simulator."""
