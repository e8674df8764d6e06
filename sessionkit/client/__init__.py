"""Client-side session backends: the session travels in the cookie."""
