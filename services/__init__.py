"""Runtime shared by Tickwire's services: settings, wire protocol, subjects, connections."""
